"""Named handcrafted learning-rate schedules (GANNO Appendix E plus warm-up variants).

Every schedule is built from optax's schedule functions and returned as an
``optax.Schedule`` (``step -> lr``)::

    sched = make_schedule("cosine", init_lr=1e-3, total_steps=1000)
    sched(jnp.arange(1000))              # vectorised over any step shape

How schedules are built
-----------------------
* Each registry entry builds a *unit* schedule (``init_lr = 1.0``) from Python
  integers only; :func:`make_schedule` returns ``init_lr * unit(step)``.  This
  keeps every boundary a static Python int, so ``init_lr`` may be a traced JAX
  scalar (``jax.vmap`` over a grid of initial LRs, ``jax.jit``).  It is needed:
  ``optax.warmup_cosine_decay_schedule`` (and so ``sgdr_schedule``) does a
  Python ``peak_value == 0.0`` test that fails on a tracer, and the onecycle
  schedules compute ``peak_value / div_factor`` eagerly.
* The unit schedule is wrapped in ``jnp.vectorize`` because
  ``optax.piecewise_interpolate_schedule`` (behind the onecycle schedules) only
  accepts a scalar step.  The output always has the shape of ``step`` and the
  default float dtype.
* Step convention (optax's): step ``t`` is the number of updates already done,
  the budget is steps ``0 .. total_steps-1``, and a decaying schedule reaches
  its end value at ``t == total_steps`` (the step after the final update; it
  is held for ``t > total_steps``).  With ``T = total_steps``:

================  ==========================================================
name              definition (times ``init_lr``)
================  ==========================================================
constant          ``1``
step              piecewise constant, x0.1 at ``T // 2`` and x0.1 again at
                  ``(3 * T) // 4`` (boundaries that coincide for tiny ``T``
                  are merged, scales multiplied)
exponential       ``max(0.01 ** (t / T), 0.01)``: smooth (not staircase)
                  decay reaching 1% of ``init_lr`` at ``t = T``
linear            ``1 - min(t, T) / T``  (linear decay to 0)
quadratic         ``(1 - min(t, T) / T) ** 2``  (polynomial, power 2, to 0)
cosine            ``0.5 * (1 + cos(pi * min(t, T) / T))``  (alpha = 0)
sgdr              ``n = min(4, T)`` cycles of lengths ``T // n`` (the first
                  ``T % n`` cycles one step longer), each a cosine from
                  ``init_lr`` to 0, no warm-up, restart to ``init_lr``
warmup_cosine     linear warm-up from 0 to ``init_lr`` over ``W`` steps, then
                  cosine to 0 at ``t = T``; ``W = min(max(1, T // 10), T - 1)``
                  (10% of the budget; ``W = 0`` only when ``T == 1``)
warmup_linear     linear warm-up from 0 over ``W`` steps (same ``W``), then
                  constant ``init_lr``
onecycle_cosine   ``optax.cosine_onecycle_schedule(T, init_lr)`` with optax's
                  defaults ``pct_start=0.3, div_factor=25,
                  final_div_factor=1e4``: cosine ``init_lr/25 -> init_lr``
                  over ``[0, int(0.3 T))`` then ``-> init_lr/2.5e5`` at ``T``
onecycle_linear   ``optax.linear_onecycle_schedule(T, init_lr)`` with optax's
                  defaults ``pct_start=0.3, pct_final=0.85, div_factor=25,
                  final_div_factor=1e4``: linear ``init_lr/25 -> init_lr`` at
                  ``int(0.3 T)``, ``-> init_lr/25`` at ``int(0.85 T)``,
                  ``-> init_lr/2.5e5`` at ``T``
================  ==========================================================

The nine schedules of GANNO's Figure 5 (``FIGURE5_SCHEDULES``, drawn by
``experiments/schedule_shapes.py``) are the nine the paper's tables name:
constant, linear, quadratic, cosine, exponential, step ("piecewise"), sgdr
(Tables 1-3), warmup_cosine ("linear warm-up, cosine decay") and
onecycle_cosine ("cosine one-cycle", Table 5). warmup_linear and
onecycle_linear are extra variants the paper does not use.
PyTorch-semantics schedules for the PPO-scheduler paper live in
:mod:`ganno_jax.baselines.torch_schedules`.
"""
from __future__ import annotations

import dataclasses
import operator
import types
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganno_jax.checks import check_choice, check_int, require

__all__ = ["ScheduleSpec", "SCHEDULES", "FIGURE5_SCHEDULES", "make_schedule", "schedule_names"]

#: Multiplicative drop of the ``step`` schedule at each boundary.
STEP_DECAY = 0.1
#: Fraction of ``init_lr`` that ``exponential`` reaches at ``t = total_steps``.
EXPONENTIAL_FINAL_FRACTION = 0.01
#: Number of warm restarts cycles of ``sgdr``.
SGDR_CYCLES = 4
#: The ``warmup_*`` schedules warm up over ``total_steps // WARMUP_DIVISOR`` steps (10%).
WARMUP_DIVISOR = 10


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """A named schedule: ``build(total_steps)`` returns the unit (``init_lr = 1``) optax schedule."""

    name: str
    description: str
    build: Callable[[int], optax.Schedule]


# --------------------------------------------------------------------------- validation helpers
def check_total_steps(value: Any, field: str = "total_steps", minimum: int = 1) -> int:
    """Return ``value`` as a Python int (NumPy integers too), or raise ``ValueError`` unless it is an integer
    >= ``minimum`` (``checks.check_int``)."""
    if not isinstance(value, bool):
        try:
            value = int(operator.index(value))
        except TypeError:
            pass  # not an integer: check_int refuses it
    return check_int(field, value, minimum)


def check_nonnegative_lr(value: Any, field: str = "init_lr") -> None:
    """Raise ``ValueError`` if a concrete ``value`` (a number or an array of them) is negative or non-finite;
    traced values pass."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return  # traced (under jit / vmap): cannot be checked here
    except (TypeError, ValueError):
        arr = None
    ok = arr is not None and bool(np.all(np.isfinite(arr))) and not bool(np.any(arr < 0))
    require(field, value, ok, "a finite number >= 0")


def scale_schedule(unit: optax.Schedule, lr: Any) -> optax.Schedule:
    """Return ``step -> lr * unit(step)``, vectorised over any step shape (``lr`` may be traced)."""

    def scalar_unit(step):
        return jnp.asarray(unit(step), dtype=float)

    vectorised = jnp.vectorize(scalar_unit)

    def schedule(step):
        return lr * vectorised(jnp.asarray(step))

    return schedule


# --------------------------------------------------------------------------- unit builders
def _warmup_steps(total_steps: int) -> int:
    return min(max(1, total_steps // WARMUP_DIVISOR), total_steps - 1)


def _constant(total_steps: int) -> optax.Schedule:
    del total_steps
    return optax.constant_schedule(1.0)


def _step(total_steps: int) -> optax.Schedule:
    scales: dict[int, float] = {}
    for boundary in (total_steps // 2, (3 * total_steps) // 4):
        scales[boundary] = scales.get(boundary, 1.0) * STEP_DECAY
    return optax.piecewise_constant_schedule(1.0, scales)


def _exponential(total_steps: int) -> optax.Schedule:
    return optax.exponential_decay(
        init_value=1.0,
        transition_steps=total_steps,
        decay_rate=EXPONENTIAL_FINAL_FRACTION,
        end_value=EXPONENTIAL_FINAL_FRACTION,
    )


def _linear(total_steps: int) -> optax.Schedule:
    return optax.linear_schedule(init_value=1.0, end_value=0.0, transition_steps=total_steps)


def _quadratic(total_steps: int) -> optax.Schedule:
    return optax.polynomial_schedule(
        init_value=1.0, end_value=0.0, power=2, transition_steps=total_steps
    )


def _cosine(total_steps: int) -> optax.Schedule:
    return optax.cosine_decay_schedule(init_value=1.0, decay_steps=total_steps, alpha=0.0)


def _sgdr(total_steps: int) -> optax.Schedule:
    n = min(SGDR_CYCLES, total_steps)
    lengths = [total_steps // n + (1 if i < total_steps % n else 0) for i in range(n)]
    return optax.sgdr_schedule(
        [
            dict(init_value=1.0, peak_value=1.0, warmup_steps=0, decay_steps=length, end_value=0.0)
            for length in lengths
        ]
    )


def _warmup_cosine(total_steps: int) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=1.0,
        warmup_steps=_warmup_steps(total_steps),
        decay_steps=total_steps,
        end_value=0.0,
    )


def _warmup_linear(total_steps: int) -> optax.Schedule:
    warmup = _warmup_steps(total_steps)
    if warmup == 0:  # optax's linear_schedule would be constant *init_value* (= 0) here
        return optax.constant_schedule(1.0)
    return optax.linear_schedule(init_value=0.0, end_value=1.0, transition_steps=warmup)


def _onecycle_cosine(total_steps: int) -> optax.Schedule:
    return optax.cosine_onecycle_schedule(transition_steps=total_steps, peak_value=1.0)


def _onecycle_linear(total_steps: int) -> optax.Schedule:
    return optax.linear_onecycle_schedule(transition_steps=total_steps, peak_value=1.0)


_SPECS = (
    ScheduleSpec("constant", "Constant init_lr.", _constant),
    ScheduleSpec("step", "Piecewise constant: x0.1 at 50% and again at 75% of the budget.", _step),
    ScheduleSpec("exponential", "Smooth exponential decay to 1% of init_lr at the end.", _exponential),
    ScheduleSpec("linear", "Linear decay from init_lr to 0.", _linear),
    ScheduleSpec("quadratic", "Polynomial (power 2) decay from init_lr to 0.", _quadratic),
    ScheduleSpec("cosine", "Cosine decay from init_lr to 0.", _cosine),
    ScheduleSpec("sgdr", "SGDR: 4 equal cosine cycles init_lr -> 0 with warm restarts.", _sgdr),
    ScheduleSpec(
        "warmup_cosine", "Linear warm-up 0 -> init_lr over 10%, then cosine to 0.", _warmup_cosine
    ),
    ScheduleSpec(
        "warmup_linear", "Linear warm-up 0 -> init_lr over 10%, then constant.", _warmup_linear
    ),
    ScheduleSpec(
        "onecycle_cosine", "optax cosine one-cycle with peak init_lr (optax defaults).", _onecycle_cosine
    ),
    ScheduleSpec(
        "onecycle_linear", "optax linear one-cycle with peak init_lr (optax defaults).", _onecycle_linear
    ),
)

#: Registry of named schedules, ``name -> ScheduleSpec`` (read-only).
SCHEDULES: Mapping[str, ScheduleSpec] = types.MappingProxyType(
    {spec.name: spec for spec in _SPECS}
)

#: The nine handcrafted schedules of GANNO's Appendix E, Figure 5: those its Tables 1-3 and 5 name, in their order.
FIGURE5_SCHEDULES = ("constant", "linear", "quadratic", "cosine", "exponential", "step", "sgdr", "warmup_cosine",
                     "onecycle_cosine")


def schedule_names() -> tuple[str, ...]:
    """Return the registered schedule names in registry order."""
    return tuple(SCHEDULES)


def make_schedule(name: str, init_lr: Any, total_steps: int) -> optax.Schedule:
    """Build the named schedule scaled by ``init_lr`` over a budget of ``total_steps`` updates.

    ``init_lr`` may be a Python float or a (possibly traced) JAX scalar; ``total_steps``
    must be a static Python integer >= 1.  Returns an ``optax.Schedule`` accepting a
    step of any shape.  Raises ``ValueError`` for an unknown name or bad arguments.
    """
    check_choice("schedule", name, schedule_names())
    total_steps = check_total_steps(total_steps)
    check_nonnegative_lr(init_lr)
    return scale_schedule(SCHEDULES[name].build(total_steps), init_lr)
