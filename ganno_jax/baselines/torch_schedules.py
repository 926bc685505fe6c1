"""PyTorch-semantics learning-rate schedules (baselines of the single-agent PPO scheduler paper).

The paper's baselines are SGD / Adam / Adadelta combined with PyTorch's
``ConstantLR`` and ``OneCycleLR``.  The functions here reproduce those
schedulers' learning rate at step ``t`` (``t`` = ``last_epoch``, i.e. the
number of ``scheduler.step()`` calls made so far; the LR used for the first
update is the value at ``t = 0``) as optax schedules built from optax pieces.
Like :func:`ganno_jax.baselines.make_schedule`, each schedule is built for a
unit LR from Python numbers and multiplied by ``lr`` / ``max_lr``, which may
therefore be traced JAX scalars; outputs have the shape of ``step``.

* :func:`torch_constant_lr` -- ``ConstantLR(factor, total_iters)``:
  ``lr * factor`` for ``t < total_iters`` and ``lr`` afterwards
  (``optax.join_schedules`` of two ``optax.constant_schedule``).
* :func:`torch_onecycle_lr` -- ``OneCycleLR``.  PyTorch places the phase ends
  at the *float* steps ``e1 = pct_start * total_steps - 1`` and
  ``total_steps - 1`` (three-phase: ``e1``, ``2 * pct_start * total_steps - 2``,
  ``total_steps - 1``), uses ``pct = (t - e_prev) / (e - e_prev)`` within a
  phase (``e_prev = 0`` for the first) and puts step ``t`` into the first phase
  with ``t <= e``.  ``optax.cosine_onecycle_schedule(T, max_lr)`` instead peaks at
  the integer step ``int(pct_start * T)`` and reaches its final value at ``T``
  (``pct = t / int(pct_start * T)`` in the warm-up), so its values differ from
  PyTorch's at every step but ``t = 0`` -- it is not a shift of PyTorch's
  schedule.  Here each phase is an ``optax.cosine_decay_schedule`` (with
  ``alpha = end / start``, which gives exactly PyTorch's
  ``end + (start - end) / 2 * (1 + cos(pi * pct))``, also for ``alpha > 1``) or
  an ``optax.linear_schedule`` (``anneal="linear"``) over the float length
  ``e - e_prev``, evaluated at the count shifted by ``ceil``-rounding of the
  phase start, and the phases are joined with ``optax.join_schedules`` at the
  integer boundaries ``floor(e) + 1``.

Differences from PyTorch, by design: PyTorch raises for ``t > total_steps``
and extrapolates the last phase at ``t = total_steps``; here the final value
``min_lr`` is held for every ``t >= total_steps - 1``.  Settings in which a
phase would have non-positive length (``pct_start * total_steps <= 1``, or for
``three_phase`` also ``2 * pct_start * total_steps >= total_steps + 1``) are
rejected with ``ValueError``: PyTorch either divides by zero or silently skips
a phase there.
"""
from __future__ import annotations

import math
from typing import Any

import optax

from ganno_jax.baselines.schedules import check_nonnegative_lr, check_total_steps, scale_schedule
from ganno_jax.checks import check_choice, check_float_range

__all__ = ["torch_constant_lr", "torch_onecycle_lr"]

_ANNEAL_STRATEGIES = ("cos", "linear")


def torch_constant_lr(lr: Any, factor: float = 1.0 / 3.0, total_iters: int = 5) -> optax.Schedule:
    """PyTorch ``ConstantLR``: ``lr * factor`` for steps ``< total_iters``, then ``lr``.

    ``factor`` must lie in ``[0, 1]`` (as in PyTorch), ``total_iters`` is an integer >= 0,
    ``lr`` may be traced.  Matches PyTorch's closed form (``_get_closed_form_lr``), which
    agrees with its recursive ``get_lr`` except for ``total_iters = 0`` (constant ``lr``
    here; the recursive form would stay at ``lr * factor``).
    """
    check_nonnegative_lr(lr, "lr")
    check_float_range("factor", factor, 0, 1)
    total_iters = check_total_steps(total_iters, "total_iters", minimum=0)
    unit = optax.join_schedules(
        [optax.constant_schedule(float(factor)), optax.constant_schedule(1.0)], [total_iters]
    )
    return scale_schedule(unit, lr)


def _shifted(schedule: optax.Schedule, offset: float) -> optax.Schedule:
    """Return ``count -> schedule(count + offset)``."""
    return lambda count: schedule(count + offset)


def _anneal_phase(anneal: str, start: float, end: float, length: float) -> optax.Schedule:
    """optax schedule going from ``start`` (count 0) to ``end`` (count ``length``), then held."""
    if anneal == "cos":
        return optax.cosine_decay_schedule(init_value=start, decay_steps=length, alpha=end / start)
    return optax.linear_schedule(init_value=start, end_value=end, transition_steps=length)


def torch_onecycle_lr(
    max_lr: Any,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> optax.Schedule:
    """PyTorch ``OneCycleLR`` (``anneal_strategy=anneal``) as an optax schedule.

    ``initial_lr = max_lr / div_factor`` and ``min_lr = initial_lr / final_div_factor``;
    see the module docstring for the phase layout and how it differs from optax's
    ``cosine_onecycle_schedule``.  ``max_lr`` may be traced; the other arguments are static.
    """
    check_nonnegative_lr(max_lr, "max_lr")
    total_steps = check_total_steps(total_steps)
    check_float_range("pct_start", pct_start, 0, 1)
    check_float_range("div_factor", div_factor, 0, low_open=True)
    check_float_range("final_div_factor", final_div_factor, 0, low_open=True)
    check_choice("anneal", anneal, _ANNEAL_STRATEGIES)

    # Unit LRs (max_lr = 1) and phase end steps, computed exactly as PyTorch does.
    initial = 1.0 / float(div_factor)
    minimum = initial / float(final_div_factor)
    warm_end = float(pct_start * total_steps) - 1
    if three_phase:
        phases = [
            (warm_end, initial, 1.0),
            (float(2 * pct_start * total_steps) - 2, 1.0, initial),
            (float(total_steps - 1), initial, minimum),
        ]
    else:
        phases = [(warm_end, initial, 1.0), (float(total_steps - 1), 1.0, minimum)]

    schedules, boundaries = [], []
    start_step = 0.0
    for index, (end_step, start_lr, end_lr) in enumerate(phases):
        length = end_step - start_step
        if not length > 0:
            raise ValueError(
                f"phase {index + 1} of OneCycleLR spans steps ({start_step}, {end_step}], a "
                f"non-positive length (total_steps={total_steps}, pct_start={pct_start}, "
                f"three_phase={three_phase}); need pct_start * total_steps > 1"
                + (" and 2 * pct_start * total_steps < total_steps + 1" if three_phase else "")
            )
        phase = _anneal_phase(anneal, start_lr, end_lr, length)
        if index == 0:
            schedules.append(phase)
        else:
            # Integer steps t > start_step belong to this phase: the first one is floor + 1.
            boundary = math.floor(start_step) + 1
            boundaries.append(boundary)
            schedules.append(_shifted(phase, boundary - start_step))
        start_step = end_step
    return scale_schedule(optax.join_schedules(schedules, boundaries), max_lr)
