"""Fidelity gaps of issue 25 fixed in code: ResNet-18's 18 agents (a shortcut moves with its block), the ResNets'
literature widths, Table 3's baselines, Fig. 5's nine schedules, the weight-decay-mode warning, paper 000's
agent budget option and all-seed plot, and the Fig. 7 script. No training: shapes, configs and small files."""
from __future__ import annotations

import csv
import json
import os
import warnings

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax import flags
from ganno_jax.baselines.schedules import FIGURE5_SCHEDULES, make_schedule
from ganno_jax.env import features
from ganno_jax.evaluation.harness import EvalResult
from ganno_jax.evaluation.tables import save_results
from ganno_jax.tasks.models import init_params


def _shapes(model: str, width: int, input_shape=(32, 32, 3)):
    module = gj.tasks.build_model(model, 10, width)
    return jax.eval_shape(lambda k: init_params(module, k, input_shape), jax.random.key(0))


def test_resnet18_has_18_agents_and_each_shortcut_moves_with_its_block():
    params = _shapes("resnet18", 8)
    layers = gj.tasks.agent_layers(params)
    assert len(layers) == 18 and [layer.kind for layer in layers] == ["conv"] * 17 + ["linear"]
    owners = gj.tasks.leaf_agents(params)
    shortcuts = sorted(k for k in params if k.endswith("_shortcut"))
    assert shortcuts == ["L05_shortcut", "L09_shortcut", "L13_shortcut"]  # first conv of stages 2-4
    for name in shortcuts:
        block = name.replace("_shortcut", "_conv")
        assert params[name]["kernel"].shape[:2] == (1, 1) and params[block]["kernel"].shape[:2] == (3, 3)
        agent = {int(a) for key in (name, block, name + "_norm") for a in jax.tree.leaves(owners[key])}
        assert agent == {int(name[1:3])}  # one LR scales the block's conv, its shortcut and their norms
    # the per-agent leaf groups the inner trainer scales each LR by hold the shortcut in its block's group
    trainer = gj.env.InnerTrainer(gj.tasks.get("digits-resnet18", width=2))
    leaf_names = ["/".join(str(getattr(p, "key", p)) for p in path)
                  for path, _ in jax.tree_util.tree_flatten_with_path(_shapes("resnet18", 2, (8, 8, 1)))[0]]
    assert trainer.num_agents == 18
    group5 = {leaf_names[i].split("/")[0] for i in trainer.groups[5]}
    assert group5 == {"L05_conv", "L05_norm", "L05_shortcut", "L05_shortcut_norm"}


def test_resnets_take_their_literature_width_from_the_registry():
    assert gj.tasks.get("cifar10-resnet18").width == 64 and gj.tasks.get("fashion_mnist-resnet9").width == 64
    assert gj.tasks.get("cifar10-cnn5").width == 32  # the dataset's width for every other model
    assert gj.tasks.get("cifar10-resnet18", width=4).width == 4  # an override wins
    channels = [v["kernel"].shape[-1] for k, v in sorted(_shapes("resnet9", 64).items()) if k.endswith("_conv")]
    assert channels == [64, 128, 128, 128, 256, 512, 512, 512]  # DAWNBench's ResNet-9


def test_weight_decay_baselines_are_table_3s_rows_and_l2_at_paper_scale(capsys, experiment):
    module = experiment("weight_decay")
    assert module.BASELINES == ("constant", "linear", "quadratic", "cosine", "exponential", "step", "sgdr", "lion")
    assert "L2" in module.__doc__ and "VeLO" in module.__doc__
    module.main(["--scale", "paper", "--print-config"])
    conf = json.loads(capsys.readouterr().out)
    assert conf["baselines"] == list(module.BASELINES)
    assert all(t["weight_decay_mode"] == "l2" for t in conf["eval_tasks"].values())


def test_figure5_is_the_nine_schedules_the_tables_name(capsys, experiment):
    assert FIGURE5_SCHEDULES == ("constant", "linear", "quadratic", "cosine", "exponential", "step", "sgdr",
                                 "warmup_cosine", "onecycle_cosine")
    assert float(make_schedule("warmup_cosine", 1.0, 100)(0)) == 0.0  # it warms up from 0
    experiment("schedule_shapes").main(["--print-config"])
    conf = json.loads(capsys.readouterr().out)
    assert conf["schedules"] == list(FIGURE5_SCHEDULES) and conf["steps"] == 30_000  # a paper-scale run


def test_single_agent_sees_only_the_global_features():
    from ganno_jax.env.wrappers import SINGLE_AGENT_GROUPS

    assert set(SINGLE_AGENT_GROUPS) == set(features.GLOBAL_GROUPS)
    assert not {"current_lr", "previous_action", "current_wd"} & set(SINGLE_AGENT_GROUPS)


def test_evaluating_a_run_in_another_weight_decay_mode_warns():
    run_task = gj.tasks.get("digits-mlp", weight_decay_mode="decoupled")
    with pytest.warns(UserWarning, match="trained with weight_decay_mode='decoupled'.*--weight-decay-mode decoupled"):
        task = flags.task_from("digits-cnn3", explicit_sizes={"weight_decay_mode": "l2"}, run_task=run_task)
    assert task.weight_decay_mode == "l2"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the run's own mode: silent
        assert flags.task_from("digits-cnn3", run_task=run_task).weight_decay_mode == "decoupled"


def test_sgd_scheduler_agent_budget_is_an_option(capsys, experiment):
    module = experiment("sgd_scheduler")
    module.main(["--smoke", "--print-config"])
    default = json.loads(capsys.readouterr().out)["budgets"]
    assert default["agent_training_env_steps"] == 4 * 2  # grid LRs x epochs: the equal budget
    module.main(["--smoke", "--print-config", "--agent-epochs", "16"])
    conf = json.loads(capsys.readouterr().out)
    assert conf["budgets"]["agent_training_env_steps"] == 16 and conf["budgets"]["agent_ppo_updates"] == 2
    assert conf["divergence_penalty"]["ends_episode"] is True
    for bad, match in (("12", "not a multiple of num_envs"), ("0", "--agent-epochs=0")):
        with pytest.raises(ValueError, match=match):
            module.main(["--smoke", "--print-config", "--agent-epochs", bad])


def test_sgd_scheduler_plots_every_seed(tmp_path, experiment):
    rng = np.random.default_rng(0)
    agent = {"lr": 10 ** rng.uniform(-4, -1, (2, 5, 6)), "val_loss": rng.uniform(0.1, 2.0, (2, 5, 6))}
    sls = {"lr": 10 ** rng.uniform(-3, -1, (5, 6)), "val_loss": rng.uniform(0.1, 2.0, (5, 6))}
    path = str(tmp_path / "schedule.png")
    experiment("sgd_scheduler").plot_schedules(path, (1e-3, 1e-2), agent, sls)
    image = plt.imread(path)
    assert image.ndim == 3 and image.std() > 0


def _warmup_output(folder: str, tau: int = 5, steps: int = 4, layers: int = 2) -> None:
    """``schedules.json`` and ``ganno_from_zero.json`` as warmup.py writes them (``save_results``)."""
    def result(method, init_lrs, runs, lrs):
        shape = (len(init_lrs), runs, steps)
        curves = {"test_acc": np.full(shape, 0.5), "test_loss": np.ones(shape), "val_acc": np.full(shape, 0.5),
                  "train_loss": np.ones(shape), "lrs": lrs, "wds": np.full((*shape, layers), 0.1),
                  "diverged": np.zeros(shape, bool)}
        return EvalResult(method, "digits-mlp", tuple(init_lrs), 0.1, curves)

    ramp = np.array([0.2, 1.0, 0.5, 0.1])
    cycle = np.stack([np.broadcast_to((peak * ramp)[None, :, None], (2, steps, layers)) for peak in (1e-3, 1e-2)])
    ganno = np.arange(6 * steps * layers, dtype=float).reshape(1, 6, steps, layers) * 1e-4
    task = {"task": {"tau": tau}}
    save_results([result("warmup_cosine", (1e-3, 1e-2), 2, cycle), result("onecycle_cosine", (1e-3, 1e-2), 2, cycle)],
                 folder, "schedules", extra=task)
    save_results([result("GANNO", (0.0,), 6, ganno)], folder, "ganno_from_zero", extra=task)


def test_fig7_draws_three_ganno_runs_beside_cosine_one_cycle(tmp_path, experiment):
    results, out = str(tmp_path / "warmup" / "digits-cnn5"), str(tmp_path / "fig7")
    _warmup_output(results)
    paths = experiment("fig7").main(["--results", results, "--peak-lr", "0.008", "--out", out])
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]  # decisions x tau
    np.testing.assert_allclose([float(r["onecycle_cosine"]) for r in rows], [2e-3, 1e-2, 5e-3, 1e-3])  # peak 1e-2
    assert [k for k in rows[0] if k.startswith("run")] == [f"run{r}_layer{i}" for r in (0, 2, 5) for i in (0, 1)]
    assert float(rows[1]["run2_layer1"]) == pytest.approx((2 * 8 + 1 * 2 + 1) * 1e-4)  # run 2, step 1, layer 1
    image = plt.imread(paths["png"])
    assert image.ndim == 3 and image.std() > 0
    assert sorted(os.listdir(out)) == ["fig7.csv", "fig7.png"]


@pytest.mark.parametrize("argv,error,match", [
    (["--runs", "7"], ValueError, "--runs=7 must be an integer"),
    (["--peak-lr", "0"], ValueError, "--peak-lr=0.0"),
    (["--results", "nowhere"], FileNotFoundError, "no schedules.json"),
])
def test_fig7_refuses_bad_input_and_writes_nothing(tmp_path, experiment, argv, error, match):
    results, out = str(tmp_path / "w"), str(tmp_path / "fig7")
    _warmup_output(results)
    with pytest.raises(error, match=match):
        experiment("fig7").main(["--results", results, "--out", out, *argv])
    assert not os.path.exists(out)
