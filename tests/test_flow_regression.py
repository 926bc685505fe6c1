"""A smoke-scale slice recorded before the one-flow redesign (issue 20): two PPO updates of a tiny CNN run
through ``training.train_run`` and a 2 x 2 evaluation grid (GANNO from the run folder, constant LR and
Prodigy) through ``evaluation.run_many`` must reproduce the figures below (rtol 1e-4).

The figures were recorded on main at a2cc8b4, before the dataset moved into ``EnvParams`` and the run's
EnvParams into evaluation. A later change may re-record them only with the reason in its commit message.
"""
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax import run_log, training
from ganno_jax.agents import IPPOConfig
from ganno_jax.evaluation import controllers

TASK = gj.tasks.get("digits-cnn2", tau=3, horizon=4, batch_size=16, width=4, eval_batch=64)
CFG = IPPOConfig(num_envs=2, num_steps=8, total_timesteps=2 * 8 * 2, update_epochs=1, num_minibatches=2,
                 actor_layers=(16,), gru_size=8, actor_post_gru=8, critic_layers=(16,))
INIT_LRS = (1e-3, 1e-2)

#: metrics.csv columns after each of the two updates
RECORDED_METRICS = {
    "mean_reward": [-0.001953125, -0.00390625],
    "val_acc": [0.115234375, 0.13671875],
    "loss_total": [2214.79443359375, 0.5785833597183228],
    "entropy": [2.1972177028656006, 2.1972060203552246],
}
#: final test accuracy [2 initial LRs, 2 seeds] of each method
RECORDED_FINAL_ACC = {
    "GANNO": [[0.08888889104127884, 0.11388888955116272], [0.49722224473953247, 0.3194444477558136]],
    "constant": [[0.10833333432674408, 0.10000000149011612], [0.5527777671813965, 0.31388890743255615]],
    "prodigy": [[0.17499999701976776, 0.1527777761220932], [0.5722222328186035, 0.31388890743255615]],
}


@pytest.fixture(scope="module")
def slice_figures(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("flow") / "run")
    training.train_run(out, TASK, CFG, seed=3, checkpoint_every=1, progress=False, log_episodes=())
    rows = run_log.read_rows(f"{out}/{run_log.METRICS_CSV}", np.inf)
    metrics = {k: [r[k] for r in rows] for k in RECORDED_METRICS}
    methods = [controllers.from_run(out, actions="sample"), controllers.baseline("constant"),
               controllers.baseline("prodigy")]
    results = gj.evaluation.run_many(methods, TASK, init_lrs=INIT_LRS, seeds=2, max_parallel_runs=4)
    return metrics, {r.method: r.final_acc.tolist() for r in results}


def test_training_slice_equals_recorded(slice_figures):
    metrics, _ = slice_figures
    for field, recorded in RECORDED_METRICS.items():
        np.testing.assert_allclose(metrics[field], recorded, rtol=1e-4, atol=1e-6, err_msg=field)


def test_evaluation_slice_equals_recorded(slice_figures):
    _, finals = slice_figures
    for method, recorded in RECORDED_FINAL_ACC.items():
        # atol: one example of digits' 360-example test split, so one argmax flipped by another CPU's round-off
        np.testing.assert_allclose(finals[method], recorded, rtol=1e-4, atol=1 / 360 + 1e-6, err_msg=method)


def test_run_env_params_reach_evaluation_whole(tmp_path):
    """A run's EnvParams (every field, a non-default one included) reach evaluation equal but for the
    documented evaluation overrides."""
    from ganno_jax import runs
    from ganno_jax.env.layerwise import EVALUATION_OVERRIDES, EnvParams

    trained = EnvParams(lr_max=0.05, wd_min=0.001, control_wd=True, init_lr_min=1e-4, reward_mode="difference")
    config = runs.RunConfig(TASK, CFG, trained, variant="lr_only")
    runs.create_run(str(tmp_path), config)
    saved = runs.load_config(str(tmp_path)).env_params
    assert saved == config.env_params and saved.obs_mask is not None  # the variant's mask, saved with the rest
    data = gj.data.load_dataset(TASK.dataset)
    evaluated = gj.evaluation.controllers.learned("p", None, saved).env_params.for_evaluation(data, 3e-3, 0.01)
    for field in EnvParams.__dataclass_fields__:
        if field not in EVALUATION_OVERRIDES:
            assert getattr(evaluated, field) == getattr(saved, field), field
    assert (evaluated.reward_mode, evaluated.track_test, evaluated.init_lr, evaluated.init_wd, evaluated.data) == (
        "accuracy", True, 3e-3, 0.01, data)
