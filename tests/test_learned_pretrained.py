"""Pretrained controllers shipped as package data: listed, loaded by name in a fresh process, run by
``learned.schedule`` with the tau / horizon / bounds they were trained at."""
import subprocess
import sys

import pytest

from ganno_jax import learned

SCRIPT = """
import jax, jax.numpy as jnp, optax
from ganno_jax import learned
from ganno_jax.scales import GANNO_SCALES
ctrl = learned.pretrained()
cpu = GANNO_SCALES["cpu"]
assert ctrl.name == learned.RECOMMENDED and (ctrl.tau, ctrl.horizon) == (cpu.task["tau"], cpu.task["horizon"]), ctrl
assert ctrl.env_params.action_set == cpu.env["action_set"], ctrl.env_params
params = {"Conv_0": {"kernel": jnp.ones((3, 3, 1, 4)) * 0.1, "bias": jnp.zeros(4)},
          "Dense_0": {"kernel": jnp.ones((16, 10)) * 0.1, "bias": jnp.zeros(10)}}
tx = learned.schedule(optax.adam(1e-3), ctrl, tau=2, horizon=3, init_lr=1e-3)
state = tx.init(params)
step = jax.jit(lambda g, s, p: tx.update(g, s, p, train_loss=1.0, train_acc=0.5, val_loss=1.1, val_acc=0.5,
                                          weight_decay=0.0))
for _ in range(7):
    updates, state = step(jax.tree.map(jnp.ones_like, params), state, params)
    params = optax.apply_updates(params, updates)
lrs = learned.lrs(state)
assert lrs.shape == (2,) and bool(jnp.all(jnp.isfinite(lrs))) and bool(jnp.all(lrs > 0)), lrs
print("OK", learned.pretrained_names(), lrs)
"""


def test_recommended_controller_loads_by_name_in_a_fresh_process_and_runs():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout and learned.RECOMMENDED in out.stdout


def test_controller_carries_what_schedule_needs_and_unknown_names_fail():
    assert learned.RECOMMENDED in learned.pretrained_names()
    ctrl = learned.pretrained(learned.RECOMMENDED, greedy=False)
    assert not ctrl.policy.greedy and ctrl.env_params.data is None and not ctrl.env_params.control_wd
    assert {"command", "commit", "config"} <= set(ctrl.provenance)
    assert ctrl.policy.cfg.activation == "tanh" and ctrl.variant == "ganno"
    with pytest.raises(ValueError, match="available: .*" + learned.RECOMMENDED):
        learned.pretrained("no-such-controller")


def test_ganno_evaluate_pretrained_names_its_row_and_runs_at_its_training_sizes(tmp_path):
    import json

    from ganno_jax import cli

    out = str(tmp_path / "eval")
    argv = ["evaluate", "--pretrained", learned.RECOMMENDED, "--task", "digits-mlp", "--methods", "constant",
            "--init-lrs", "1e-3", "--seeds", "1", "--horizon", "2", "--out", out, "--no-progress"]
    assert cli.main(argv) == 0
    saved = json.load(open(f"{out}/results.json"))
    ctrl = learned.pretrained()
    assert saved["task"]["tau"] == ctrl.tau and saved["task"]["horizon"] == 2  # carried over; the flag wins
    assert [r["method"] for r in saved["results"]][0] == learned.RECOMMENDED
    assert cli.main(argv[:1] + ["--run", out] + argv[1:] + ["--overwrite"]) == 2  # --run and --pretrained
