"""Tables say which weight decay each row used (evaluation/tables.py, harness.EvalResult.weight_decay_mode)
and label LAMB with the cosine schedule it runs under (GANNO Table 1)."""
import csv
import io

import numpy as np

import ganno_jax as gj
from ganno_jax import evaluate
from ganno_jax.baselines.optimizers import UPDATE_RULES, make_update_rule
from ganno_jax.evaluation import controllers


def _result(name, mode, acc):
    acc = np.asarray(acc, np.float64)[..., None]  # [L=2, S=2, T=1]
    return evaluate.EvalResult(name, "t", (1e-3, 1e-2), 0.1, {
        "test_acc": acc, "diverged": np.zeros(acc.shape, bool), "lrs": np.zeros((*acc.shape, 1))},
        weight_decay_mode=mode)


def test_markdown_names_each_rows_decay_and_lamb_schedule_and_csv_has_the_columns():
    rows = evaluate.summary_rows([_result("constant", "l2", [[0.7, 0.8], [0.8, 0.9]]),
                                  _result("lamb", "decoupled", [[0.9, 0.9], [0.9, 0.9]])])
    md = evaluate.markdown_table(rows)
    assert "| lamb (cosine) |" in md and "| constant |" in md
    assert md.splitlines()[-1] == ("Weight decay: λ = 0.1, L2 (added to the gradient before the optimiser): "
                                   "constant, tuned adam; λ = 0.1, decoupled (AdamW-style, lr * λ * θ after the "
                                   "optimiser): lamb (cosine).")
    table = list(csv.DictReader(io.StringIO(evaluate.csv_table(rows))))
    assert [(r["method"], r["weight_decay"], r["weight_decay_mode"]) for r in table] == [
        ("constant", "0.1", "l2"), ("lamb", "0.1", "decoupled"), ("tuned adam", "0.1", "l2")]  # constant's cell


def test_optimizer_baselines_keep_their_own_decay_whatever_the_tasks_mode():
    assert {make_update_rule(o).weight_decay_mode for o in UPDATE_RULES} == {"decoupled"}
    assert controllers.OPTIMIZER_BASELINES["lamb"] == "cosine"
    lamb = controllers.baseline("lamb")
    assert (lamb.name, lamb.schedule, lamb.optimizer) == ("lamb", "cosine", "lamb")


def test_evaluation_records_the_decay_each_method_used():
    mode = "l2"
    task = gj.tasks.get("digits-mlp", tau=2, horizon=2, eval_batch=64, width=2, weight_decay_mode=mode)
    results = evaluate.run_many([controllers.baseline("constant"), controllers.baseline("lion")], task,
                                init_lrs=(1e-3,), seeds=1)
    assert [(r.method, r.weight_decay_mode) for r in results] == [("constant", mode), ("lion", "decoupled")]
    assert results[0].to_dict()["weight_decay_mode"] == mode
