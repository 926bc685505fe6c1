"""Tests for ganno_jax.baselines schedules against independently written closed forms."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganno_jax.baselines import (
    SCHEDULES,
    make_schedule,
    schedule_names,
    torch_constant_lr,
    torch_onecycle_lr,
)

REQUIRED = (
    "constant", "step", "exponential", "linear", "quadratic", "cosine", "sgdr",
    "warmup_cosine", "onecycle_cosine", "onecycle_linear", "warmup_linear",
)


# --------------------------------------------------------------------------- numpy references
def _cos_interp(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def _lin_interp(start, end, pct):
    return start + (end - start) * pct


def reference(name: str, lr: float, T: int, t: int) -> float:
    """Closed-form value of the named schedule at step ``t`` (float64)."""
    u = min(t, T) / T  # fraction of the budget, held at 1 after the end
    if name == "constant":
        return lr
    if name == "step":
        return lr * 0.1 ** ((t >= T // 2) + (t >= (3 * T) // 4))
    if name == "exponential":
        return lr * max(0.01 ** (t / T), 0.01)
    if name == "linear":
        return lr * (1.0 - u)
    if name == "quadratic":
        return lr * (1.0 - u) ** 2
    if name == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * u))
    if name == "sgdr":
        n = min(4, T)
        lengths = [T // n + (1 if i < T % n else 0) for i in range(n)]
        start = 0
        for i, length in enumerate(lengths):
            if t < start + length or i == n - 1:
                tau = min(t - start, length) / length
                return lr * 0.5 * (1.0 + math.cos(math.pi * tau))
            start += length
    warm = min(max(1, T // 10), T - 1)
    if name == "warmup_linear":
        return lr * (min(t, warm) / warm if warm else 1.0)
    if name == "warmup_cosine":
        if t < warm:
            return lr * t / warm
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(t - warm, T - warm) / (T - warm)))
    init, final = lr / 25.0, lr / 25.0 / 1e4
    if name == "onecycle_cosine":
        peak = math.floor(0.3 * T)
        if t < peak:
            return _cos_interp(init, lr, t / peak)
        if t < T:
            return _cos_interp(lr, final, (t - peak) / (T - peak))
        return final
    if name == "onecycle_linear":
        knots = [(0, init), (math.floor(0.3 * T), lr), (math.floor(0.85 * T), init), (T, final)]
        for (a, va), (b, vb) in zip(knots[:-1], knots[1:]):
            if t < b:
                return _lin_interp(va, vb, (t - a) / (b - a))
        return knots[-1][1]
    raise KeyError(name)


def torch_onecycle_reference(max_lr, total_steps, pct_start=0.3, div_factor=25.0,
                             final_div_factor=1e4, anneal="cos", three_phase=False):
    """Port of torch.optim.lr_scheduler.OneCycleLR.get_lr for steps 0..total_steps-1."""
    initial = max_lr / div_factor
    min_lr = initial / final_div_factor
    if three_phase:
        phases = [
            dict(end_step=float(pct_start * total_steps) - 1, start=initial, end=max_lr),
            dict(end_step=float(2 * pct_start * total_steps) - 2, start=max_lr, end=initial),
            dict(end_step=total_steps - 1, start=initial, end=min_lr),
        ]
    else:
        phases = [
            dict(end_step=float(pct_start * total_steps) - 1, start=initial, end=max_lr),
            dict(end_step=total_steps - 1, start=max_lr, end=min_lr),
        ]
    fn = _cos_interp if anneal == "cos" else _lin_interp
    out = []
    for step in range(total_steps):
        start_step = 0.0
        for i, phase in enumerate(phases):
            end_step = phase["end_step"]
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                out.append(fn(phase["start"], phase["end"], pct))
                break
            start_step = phase["end_step"]
    return np.array(out)


def torch_constant_reference(lr, factor, total_iters, n):
    """Port of torch's recursive ConstantLR.get_lr (chained from the previous lr)."""
    out, cur = [], lr
    for epoch in range(n):
        if epoch == 0:
            cur = cur * factor
        elif epoch == total_iters:
            cur = cur * (1.0 / factor)
        out.append(cur)
    return np.array(out)


def _steps(T):
    return sorted({0, 1, T // 3, T // 2 - 1, T // 2, (3 * T) // 4, T - 2, T - 1, T, T + 7} - {-1})


# --------------------------------------------------------------------------- registry
def test_registry_names_and_descriptions():
    names = schedule_names()
    assert set(REQUIRED) <= set(names)
    assert names == tuple(SCHEDULES)
    for name, spec in SCHEDULES.items():
        assert spec.name == name
        assert spec.description and "\n" not in spec.description


@pytest.mark.parametrize("T", [1000, 37, 10])
@pytest.mark.parametrize("name", REQUIRED)
def test_schedule_matches_closed_form(name, T):
    lr = 3e-3
    steps = _steps(T)
    got = np.asarray(make_schedule(name, init_lr=lr, total_steps=T)(jnp.asarray(steps)))
    want = np.array([reference(name, lr, T, t) for t in steps])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6 * lr, err_msg=f"{name}, T={T}")


@pytest.mark.parametrize("name", REQUIRED)
def test_tiny_budgets_are_finite_and_match(name):
    for T in (1, 2, 3, 5):
        if name.startswith("onecycle"):
            continue  # optax's own boundary collisions for T < 4; not part of our contract
        got = np.asarray(make_schedule(name, 1.0, T)(jnp.arange(T + 2)))
        want = np.array([reference(name, 1.0, T, t) for t in range(T + 2)])
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=f"{name}, T={T}")


@pytest.mark.parametrize("name", REQUIRED)
def test_vmap_over_init_lr_and_jit(name):
    T = 200
    lrs = jnp.array([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    steps = jnp.arange(T + 1)
    grid = jax.vmap(lambda lr: make_schedule(name, lr, T)(steps))(lrs)
    assert grid.shape == (lrs.shape[0], T + 1)
    want = np.array([[reference(name, float(lr), T, t) for t in range(T + 1)] for lr in lrs])
    np.testing.assert_allclose(np.asarray(grid), want, rtol=2e-5, atol=1e-9)

    jitted = jax.jit(lambda lr, s: make_schedule(name, lr, T)(s))
    np.testing.assert_allclose(np.asarray(jitted(lrs[2], steps)), want[2], rtol=2e-5, atol=1e-9)
    # vmap over steps of the scalar schedule as well
    sched = make_schedule(name, 1e-3, T)
    np.testing.assert_allclose(np.asarray(jax.vmap(sched)(steps)), want[2], rtol=2e-5, atol=1e-9)


def test_output_shape_follows_step_shape():
    sched = make_schedule("constant", 0.5, 10)
    assert sched(3).shape == ()
    assert sched(jnp.zeros((2, 3), jnp.int32)).shape == (2, 3)
    assert make_schedule("onecycle_cosine", 0.5, 10)(jnp.arange(6).reshape(2, 3)).shape == (2, 3)
    assert jnp.issubdtype(sched(jnp.arange(4)).dtype, jnp.floating)


# --------------------------------------------------------------------------- errors
def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="schedule='cosin' is not valid; allowed: ") as info:
        make_schedule("cosin", 1e-3, 100)
    for name in REQUIRED:
        assert name in str(info.value)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_bad_total_steps(bad):
    with pytest.raises(ValueError, match=r"total_steps=.* must be an integer >= 1"):
        make_schedule("linear", 1e-3, bad)


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf")])
def test_bad_init_lr(bad):
    with pytest.raises(ValueError, match=r"init_lr=.* must be a finite number >= 0"):
        make_schedule("linear", bad, 100)


def test_traced_negative_lr_is_not_checked():
    out = jax.jit(lambda lr: make_schedule("constant", lr, 10)(0))(-1.0)
    assert float(out) == -1.0


# --------------------------------------------------------------------------- PyTorch ConstantLR
@pytest.mark.parametrize("factor,total_iters", [(1.0 / 3.0, 5), (0.5, 1), (0.25, 17), (1.0, 3)])
def test_torch_constant_lr_matches_pytorch(factor, total_iters):
    lr, n = 0.1, 40
    got = np.asarray(torch_constant_lr(lr, factor, total_iters)(jnp.arange(n)))
    np.testing.assert_allclose(got, torch_constant_reference(lr, factor, total_iters, n), rtol=1e-6)
    closed = lr * (factor + (np.arange(n) >= total_iters) * (1.0 - factor))
    np.testing.assert_allclose(got, closed, rtol=1e-6)


def test_torch_constant_lr_defaults_and_vmap():
    got = np.asarray(torch_constant_lr(0.3)(jnp.arange(8)))
    np.testing.assert_allclose(got, [0.1] * 5 + [0.3] * 3, rtol=1e-6)
    grid = jax.vmap(lambda lr: torch_constant_lr(lr, 0.5, 2)(jnp.arange(4)))(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(grid), [[0.5, 0.5, 1, 1], [1, 1, 2, 2]])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(factor=1.5), r"factor=1.5 must be a finite number in \[0, 1\]"),
        (dict(factor=-0.1), r"factor=-0.1 must be a finite number in \[0, 1\]"),
        (dict(total_iters=-1), r"total_iters=-1 must be an integer >= 0"),
        (dict(lr=-0.1), r"lr=-0.1 must be a finite number >= 0"),
    ],
)
def test_torch_constant_lr_errors(kwargs, match):
    args = dict(lr=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        torch_constant_lr(**args)


# --------------------------------------------------------------------------- PyTorch OneCycleLR
ONECYCLE_SETTINGS = [
    dict(total_steps=100, pct_start=0.3),
    dict(total_steps=10, pct_start=0.3),  # 0.3 * 10 = 3.0000000000000004 in floats
    dict(total_steps=1000, pct_start=0.25),
    dict(total_steps=37, pct_start=0.45, div_factor=10.0, final_div_factor=100.0),
    dict(total_steps=101, pct_start=0.1234),  # non-integer phase end
    dict(total_steps=100, pct_start=0.3, anneal="linear"),
    dict(total_steps=100, pct_start=0.3, three_phase=True),
    dict(total_steps=53, pct_start=0.27, three_phase=True, anneal="linear"),
]


@pytest.mark.parametrize("settings", ONECYCLE_SETTINGS, ids=str)
def test_torch_onecycle_matches_pytorch(settings):
    max_lr = 0.05
    T = settings["total_steps"]
    got = np.asarray(torch_onecycle_lr(max_lr, **settings)(jnp.arange(T)))
    want = torch_onecycle_reference(max_lr, **settings)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7 * max_lr)
    # held at min_lr after the budget
    tail = np.asarray(torch_onecycle_lr(max_lr, **settings)(jnp.arange(T - 1, T + 5)))
    np.testing.assert_allclose(tail, want[-1], rtol=2e-5, atol=1e-7 * max_lr)


def test_torch_onecycle_key_values():
    sched = torch_onecycle_lr(1.0, 100)  # pct_start 0.3 -> peak at step 29, end at 99
    np.testing.assert_allclose(float(sched(0)), 1.0 / 25.0, rtol=1e-6)
    np.testing.assert_allclose(float(sched(29)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(sched(99)), 1.0 / 25.0 / 1e4, rtol=1e-5)
    assert float(sched(28)) < 1.0 and float(sched(30)) < 1.0


def test_torch_onecycle_differs_from_optax_onecycle():
    T = 100
    ours = np.asarray(torch_onecycle_lr(1.0, T)(jnp.arange(T)))
    theirs = np.asarray(jax.vmap(optax.cosine_onecycle_schedule(T, 1.0))(jnp.arange(T)))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    assert np.max(np.abs(ours - theirs)) > 1e-3


def test_torch_onecycle_vmap_jit_over_max_lr():
    T = 50
    lrs = jnp.array([0.01, 0.1, 1.0])
    grid = jax.jit(jax.vmap(lambda m: torch_onecycle_lr(m, T)(jnp.arange(T))))(lrs)
    want = np.stack([torch_onecycle_reference(float(m), T) for m in lrs])
    np.testing.assert_allclose(np.asarray(grid), want, rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(total_steps=0), r"total_steps=0 must be an integer >= 1"),
        (dict(pct_start=1.2), r"pct_start=1.2 must be a finite number in \[0, 1\]"),
        (dict(div_factor=0.0), r"div_factor=0.0 must be a finite number > 0"),
        (dict(final_div_factor=-1.0), r"final_div_factor=-1.0 must be a finite number > 0"),
        (dict(anneal="cosine"), r"anneal='cosine' is not valid; allowed: cos, linear"),
        (dict(max_lr=-1.0), r"max_lr=-1.0 must be a finite number >= 0"),
        (dict(total_steps=3, pct_start=0.3), r"phase 1 .*non-positive length.*pct_start \* total_steps > 1"),
        (dict(total_steps=10, pct_start=0.55, three_phase=True), r"phase 3 .*non-positive length"),
    ],
)
def test_torch_onecycle_errors(kwargs, match):
    args = dict(max_lr=0.1, total_steps=100) | kwargs
    with pytest.raises(ValueError, match=match):
        torch_onecycle_lr(**args)
