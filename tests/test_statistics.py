"""Statistics of the evaluation tables (evaluation/statistics.py): IQM, stratified-bootstrap intervals, the
tuned baseline row and the summary across tasks (probability of improvement, normalised score)."""
import numpy as np
import pytest
from scipy import stats

from ganno_jax import evaluate
from ganno_jax.evaluation import statistics

LRS = (1e-4, 1e-3, 1e-2)


def _result(method, test, val=None):
    """An EvalResult whose final test (and validation) accuracy is ``test`` (``val``) [L, S], as fractions."""
    test = np.asarray(test, np.float64)[..., None]  # [L, S, T=1]
    curves = {"test_acc": test, "diverged": np.zeros(test.shape, bool), "lrs": np.zeros((*test.shape, 1))}
    if val is not None:
        curves["val_acc"] = np.asarray(val, np.float64)[..., None]
    return evaluate.EvalResult(method, "t", LRS[:test.shape[0]], 0.1, curves)


def _pooled_iqm(*strata, axis=-1):
    return statistics.iqm(np.concatenate(strata, axis=axis), axis=axis)


def test_iqm_is_the_mean_of_the_middle_half():
    assert statistics.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert statistics.iqm([[1.0, 2.0], [3.0, 100.0]]) == pytest.approx(2.5)  # the outlier is trimmed
    assert statistics.iqm_with_ci([[70.0, 80.0], [80.0, 90.0]]) == (pytest.approx(80.0), pytest.approx([75.0, 85.0]))


def test_interval_contains_the_iqm_and_narrows_with_more_seeds():
    rng = np.random.default_rng(0)
    widths = []
    for seeds in (3, 30):
        value, (low, high) = statistics.iqm_with_ci(rng.normal(80.0, 5.0, (5, seeds)))
        assert low <= value <= high
        widths.append(high - low)
    assert widths[1] < widths[0]
    assert statistics.iqm_with_ci([[80.0], [90.0]]) == (85.0, None)  # one seed per LR: nothing to resample
    assert statistics.iqm_with_ci([[70.0, 80.0]]) == statistics.iqm_with_ci([[70.0, 80.0]])  # seeded: reproducible


def test_stratified_resampling_never_mixes_strata():
    strata = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([100.0, 101.0, 102.0, 103.0])]
    share_low = statistics.stratified_bootstrap(strata, lambda *s, axis=-1: (np.concatenate(s, axis) < 50).mean(axis))
    assert np.all(share_low.bootstrap_distribution == 0.5)  # every resample keeps 4 runs of each stratum
    boot = statistics.stratified_bootstrap(strata, _pooled_iqm).bootstrap_distribution
    assert boot.min() >= 50.0 and boot.max() <= 53.0  # middle 4 of 8 = top 2 of one stratum + bottom 2 of the other
    pooled = stats.bootstrap([np.concatenate(strata)], _pooled_iqm, n_resamples=999, vectorized=True,
                             method="percentile", rng=np.random.default_rng(0)).bootstrap_distribution
    assert pooled.min() < 50.0 or pooled.max() > 53.0  # unstratified resampling leaves those bounds


def test_tuned_row_is_the_best_validation_cell_of_the_handcrafted_schedules():
    s = np.ones((3, 2))  # [L, S]
    results = [
        _result("constant", 0.5 * s, val=0.5 * s),
        _result("cosine", [[0.6, 0.6], [0.7, 0.8], [0.6, 0.6]], val=[[0.6, 0.6], [0.9, 0.9], [0.6, 0.6]]),
        _result("onecycle_cosine", 0.95 * s, val=0.8 * s),  # best test accuracy, not best validation accuracy
        _result("prodigy", 0.99 * s, val=0.99 * s),  # not a candidate
    ]
    rows = evaluate.summary_rows(results)
    tuned = rows[-1]
    assert [r["method"] for r in rows] == ["constant", "cosine", "onecycle_cosine", "prodigy", "tuned adam"]
    assert tuned["tuned"] == {"schedule": "cosine", "init_lr": 1e-3, "chosen_on": "val_acc",
                              "candidates": ["constant", "cosine", "onecycle_cosine"]}
    assert tuned["mean"] == [None, pytest.approx(75.0), None] and tuned["lr_std"] is None
    assert (tuned["avg_mean"], tuned["avg_std"], tuned["runs"]) == (pytest.approx(75.0), pytest.approx(5.0), 2)
    md = evaluate.markdown_table(rows)
    assert "| tuned adam (cosine, 0.001) | — | 75.00 ± 5.00 | — | 75.00 ± 5.00 | 75.00 [70.00, 80.00] | — | 0/2 |" in md
    assert "chosen on the mean final validation accuracy: cosine at 0.001" in md
    assert evaluate.summary_rows(results, optimizer="sgd")[-1]["method"] == "tuned sgd"
    no_val = evaluate.summary_rows([_result("constant", [[0.5], [0.6]]), _result("lion", [[0.9], [0.9]])])
    assert no_val[-1]["tuned"]["chosen_on"] == "test_acc" and no_val[-1]["iqm_ci"] is None  # one seed
    assert "TEST accuracy" in evaluate.markdown_table(no_val) and ",test_acc" in evaluate.csv_table(no_val)
    assert [r["method"] for r in evaluate.summary_rows([_result("lion", s)])] == ["lion"]  # no candidate: no row


def test_probability_of_improvement_over_runs():
    x = np.array([3.0, 1.0])
    assert statistics.probability_of_improvement(x + 10, x) == 1.0
    assert statistics.probability_of_improvement(x, x) == 0.5
    assert statistics.probability_of_improvement(x, np.array([2.0, 0.0])) == 0.75  # 3 of the 4 pairs


def test_summary_across_tasks():
    rng = np.random.default_rng(0)

    def task(shift):
        prodigy = rng.uniform(0.6, 0.7, (3, 2))
        return [_result("GANNO", prodigy + 0.2), _result("same", prodigy), _result("prodigy", prodigy),
                _result("constant", prodigy - 0.3 + shift, val=prodigy), _result("cosine", prodigy - 0.1 + shift)]

    by_task = {"a": task(0.0), "b": task(0.05)}
    by_task["b"] = [r for r in by_task["b"] if r.method != "same"]
    result = statistics.summary(by_task)
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == ["GANNO", "same", "prodigy", "constant", "cosine", "tuned adam"]
    assert rows["GANNO"]["p_improvement"] == 1.0 and rows["GANNO"]["p_improvement_ci"] == [1.0, 1.0]
    assert rows["same"]["p_improvement"] == 0.5 and rows["same"]["p_tasks"] == 1
    assert rows["prodigy"]["p_improvement"] is None
    assert rows["constant"]["normalised"] == pytest.approx(0.0) and rows["tuned adam"]["normalised"] == 1.0
    assert rows["GANNO"]["per_task"]["a"]["iqm"] <= rows["GANNO"]["per_task"]["a"]["iqm_ci"][1]
    md = statistics.summary_table(by_task)
    assert md.splitlines()[0] == ("| Method | a IQM [95% CI] | b IQM [95% CI] | P(X > prodigy) [95% CI] | "
                                  "Normalised score |")
    assert "| same | " in md and "| — | 0.50 [" in md and "(1/2 tasks)" in md
    with pytest.raises(ValueError, match="reference='adamw' is not valid; allowed: GANNO, same"):
        statistics.summary(by_task, reference="adamw")
