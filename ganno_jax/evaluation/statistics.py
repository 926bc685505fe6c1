"""Statistics as the learned-optimisation field reports them (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice", the ``rliable`` library): the interquartile mean (IQM) of a method's runs with a
stratified-bootstrap 95 % interval, a tuned baseline, and a summary across tasks.

Axis legend: one method's runs on one task are ``[L initial LRs, S seeds]`` (final test accuracy, %); the
initial LRs are the strata of every bootstrap (a seed is resampled within its initial LR, never across).

- ``iqm``: ``scipy.stats.trim_mean(x, 0.25)``, the mean of the middle 50 % of the runs.
- ``stratified_bootstrap``: ``scipy.stats.bootstrap`` given the strata as separate samples with
  ``paired=False``. scipy resamples each sample with replacement within itself, at its own size, so every
  resample keeps each stratum's run count: stratified resampling (``tests/test_statistics.py`` checks it).
  Percentile intervals (as rliable), ``RESAMPLES`` resamples, a fixed seed: tables are reproducible. A
  stratum of a single run cannot be resampled (scipy refuses it): no interval then (``None``).
- ``tuned_choice``: the tuned baseline, a swept one: among the task optimiser's ``TUNED_SCHEDULES`` that were
  evaluated, the (schedule, initial LR) cell of the best mean final validation accuracy (test accuracy when the
  results hold no validation curve); its runs are that cell's seeds.
- ``summary`` / ``summary_table``: across tasks, per method: each task's IQM [95 % CI], the probability of
  improvement over a reference (``probability_of_improvement``: P(X > Y) of one run of each, ties 1/2, the
  Mann-Whitney U / (n m), averaged over tasks; interval: a bootstrap stratified by task x initial LR x method)
  and the normalised score (per task 0 = constant LR's mean over the grid, 1 = the tuned baseline's mean;
  averaged over tasks).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

from ganno_jax.checks import check_choice
from ganno_jax.evaluation.harness import EvalResult

#: Schedules the tuned baseline chooses from (run with the task's optimiser): constant, cosine, one-cycle.
TUNED_SCHEDULES = ("constant", "cosine", "onecycle_cosine", "onecycle_linear")
#: Confidence level, resamples and seed of every bootstrap interval.
CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0
#: The normalised score's 0: this method's mean over the whole grid (1 is the tuned baseline's mean).
NORMALISED_ZERO = "constant"
#: A task whose tuned baseline is less than this many points above ``NORMALISED_ZERO`` gets no normalised
#: score (dividing by a gap that small amplifies seed noise).
MIN_NORMALISING_GAP = 1.0

#: One task's evaluation results, as ``harness.run_many`` returns them.
TaskResults = Sequence[EvalResult]


def iqm(x, axis: Optional[int] = None):
    """Interquartile mean of ``x`` (any shape) along ``axis`` (None: all of it): ``trim_mean(x, 0.25)``."""
    return stats.trim_mean(x, 0.25, axis=axis)


def stratified_bootstrap(strata: Sequence, statistic: Callable, seed: int = SEED):
    """``scipy.stats.bootstrap`` result of ``statistic(*strata, axis=-1)`` with each stratum (1-D runs, any
    size) resampled within itself; ``statistic`` gets arrays ``[resamples, n_i]`` and must reduce axis -1.
    None when a stratum holds fewer than 2 runs."""
    strata = [np.asarray(s, np.float64).ravel() for s in strata]
    if min(s.size for s in strata) < 2:
        return None
    return stats.bootstrap(strata, statistic, n_resamples=RESAMPLES, vectorized=True, paired=False,
                           confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))


def _interval(boot) -> Optional[list[float]]:
    return None if boot is None else [float(boot.confidence_interval.low), float(boot.confidence_interval.high)]


def _pooled_iqm(*strata, axis=-1):
    return iqm(np.concatenate(strata, axis=axis), axis=axis)


def iqm_with_ci(runs) -> tuple[float, Optional[list[float]]]:
    """IQM of ``runs`` [L, S] and its 95 % interval [low, high] (seeds resampled within each initial LR);
    interval None when S < 2."""
    runs = np.asarray(runs, np.float64)
    return float(iqm(runs)), _interval(stratified_bootstrap(list(runs), _pooled_iqm))


def probability_of_improvement(x, y, axis: int = -1):
    """P(X > Y) for one run X of ``x`` [..., n] and one Y of ``y`` [..., m] (ties count 1/2): the
    Mann-Whitney U of x / (n m), as rliable defines it; shape [...]."""
    u = stats.mannwhitneyu(x, y, axis=axis, method="asymptotic").statistic
    return u / (np.shape(x)[axis] * np.shape(y)[axis])


@dataclasses.dataclass(frozen=True)
class TunedChoice:
    """The tuned baseline's cell: ``result`` (a schedule of ``TUNED_SCHEDULES``) at initial LR ``lr_index``,
    chosen on ``chosen_on`` (``val_acc`` or ``test_acc``, mean final value over seeds) among ``candidates``."""

    result: EvalResult
    lr_index: int
    chosen_on: str
    candidates: tuple

    @property
    def runs(self) -> np.ndarray:
        """Final test accuracy (%) of the cell's seeds, [1, S] (one stratum)."""
        return 100.0 * np.asarray(self.result.final_acc, np.float64)[self.lr_index][None]

    def describe(self) -> dict:
        """JSON-ready: schedule, init_lr, chosen_on, candidates."""
        return {"schedule": self.result.method, "init_lr": float(self.result.init_lrs[self.lr_index]),
                "chosen_on": self.chosen_on, "candidates": list(self.candidates)}


def tuned_name(optimizer: str = "adam") -> str:
    """Name of the tuned baseline's row: ``tuned <optimizer>`` (the task's inner optimiser)."""
    return f"tuned {optimizer}"


def tuned_choice(results: TaskResults) -> Optional[TunedChoice]:
    """The best (schedule, initial LR) cell of the evaluated ``TUNED_SCHEDULES`` (None if none was evaluated):
    best mean final validation accuracy over seeds (test accuracy if some candidate has no ``val_acc``
    curve); ties go to the first schedule, then the smallest LR index."""
    candidates = [r for r in results if r.method in TUNED_SCHEDULES]
    if not candidates:
        return None
    key = "val_acc" if all("val_acc" in r.curves for r in candidates) else "test_acc"
    best = None
    for res in candidates:
        means = np.nan_to_num(np.asarray(res.curves[key], np.float64)[..., -1].mean(axis=1), nan=-np.inf)  # [L]
        index = int(np.argmax(means))
        if best is None or means[index] > best[0]:
            best = (means[index], res, index)
    return TunedChoice(best[1], best[2], key, tuple(r.method for r in candidates))


def task_runs(results: TaskResults, optimizer: str = "adam") -> dict[str, np.ndarray]:
    """Method -> final test accuracy (%) of its runs, [L, S] (the tuned baseline: [1, S], under
    ``tuned_name(optimizer)``, when a candidate schedule was evaluated)."""
    runs = {r.method: 100.0 * np.asarray(r.final_acc, np.float64) for r in results}
    choice = tuned_choice(results)
    if choice is not None:
        runs[tuned_name(optimizer)] = choice.runs
    return runs


def _improvement_statistic(layout: Sequence[tuple[int, int]]) -> Callable:
    """Mean over tasks of P(X > Y), from samples laid out task by task: ``nx`` strata of X then ``ny`` of Y."""
    def statistic(*samples, axis=-1):
        total, i = 0.0, 0
        for nx, ny in layout:
            x = np.concatenate(samples[i:i + nx], axis=axis)
            y = np.concatenate(samples[i + nx:i + nx + ny], axis=axis)
            total, i = total + probability_of_improvement(x, y, axis), i + nx + ny
        return total / len(layout)
    return statistic


def _improvement(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, Optional[list[float]]]:
    """P(X > Y) averaged over tasks, from (x [L, S], y [L', S']) per task, and its stratified interval."""
    samples = [stratum for x, y in pairs for stratum in (*x, *y)]
    statistic = _improvement_statistic([(len(x), len(y)) for x, y in pairs])
    return float(statistic(*samples)), _interval(stratified_bootstrap(samples, statistic))


def _normalised(runs: Mapping[str, np.ndarray], method: str, optimizer: str) -> Optional[float]:
    zero, one = runs.get(NORMALISED_ZERO), runs.get(tuned_name(optimizer))
    if zero is None or one is None or one.mean() - zero.mean() < MIN_NORMALISING_GAP:
        return None
    return float((runs[method].mean() - zero.mean()) / (one.mean() - zero.mean()))


def summary(results_by_task: Mapping[str, TaskResults], reference: str = "prodigy", optimizer: str = "adam") -> dict:
    """Summary across tasks (JSON-ready). ``results_by_task``: task name -> that task's results; ``reference``:
    the method every other is compared with; ``optimizer``: names the tuned row (``tuned_name``).

    Returns ``{"reference", "tasks": [names], "rows": [...]}``, one row per method in order of appearance
    (the tuned baseline included): ``method``; ``per_task``: {task: {"iqm", "iqm_ci", "mean", "normalised"}}
    for the tasks it was evaluated on; ``p_improvement`` / ``p_improvement_ci`` / ``p_tasks``: P(X > reference)
    averaged over the ``p_tasks`` tasks both ran (None for the reference itself); ``normalised`` /
    ``normalised_tasks``: the normalised score averaged over the tasks that define it (None if none)."""
    runs = {task: task_runs(results, optimizer) for task, results in results_by_task.items()}
    methods = list(dict.fromkeys(m for by_method in runs.values() for m in by_method))
    check_choice("reference", reference, methods)
    rows = []
    for method in methods:
        tasks = [t for t in runs if method in runs[t]]
        per_task = {}
        for t in tasks:
            value, ci = iqm_with_ci(runs[t][method])
            per_task[t] = {"iqm": value, "iqm_ci": ci, "mean": float(runs[t][method].mean()),
                           "normalised": _normalised(runs[t], method, optimizer)}
        pairs = [(runs[t][method], runs[t][reference]) for t in tasks if reference in runs[t]]
        p, p_ci = _improvement(pairs) if pairs and method != reference else (None, None)
        scores = [c["normalised"] for c in per_task.values() if c["normalised"] is not None]
        rows.append({"method": method, "per_task": per_task, "p_improvement": p, "p_improvement_ci": p_ci,
                     "p_tasks": len(pairs), "normalised": float(np.mean(scores)) if scores else None,
                     "normalised_tasks": len(scores)})
    return {"reference": reference, "tasks": list(runs), "rows": rows}


def _value(value: Optional[float], ci: Optional[list], digits: int, of: int = 0, total: int = 0) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}" + ("" if ci is None else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")
    return text + (f" ({of}/{total} tasks)" if of < total else "")


def summary_markdown(result: dict) -> str:
    """Markdown table of ``summary(...)``: per method, each task's IQM [95 % CI], P(X > reference) [95 % CI]
    and the normalised score, then notes defining them."""
    tasks, reference, n = result["tasks"], result["reference"], len(result["tasks"])
    header = ["Method", *[f"{t} IQM [95% CI]" for t in tasks], f"P(X > {reference}) [95% CI]", "Normalised score"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["rows"]:
        cells = [_value(row["per_task"][t]["iqm"], row["per_task"][t]["iqm_ci"], 2) if t in row["per_task"]
                 else "—" for t in tasks]
        cells += [_value(row["p_improvement"], row["p_improvement_ci"], 2, row["p_tasks"], n),
                  _value(row["normalised"], None, 2, row["normalised_tasks"], n)]
        lines.append("| " + " | ".join([row["method"], *cells]) + " |")
    notes = (f"IQM: interquartile mean of the final test accuracy (%) over initial LR × seed runs. "
             f"P(X > {reference}): probability that a run of the method beats a run of {reference} (ties 1/2; "
             f"Mann-Whitney U / nm), averaged over tasks. [95% CI]: stratified bootstrap (seeds resampled within "
             f"each task × initial LR; percentile, {RESAMPLES} resamples, seed {SEED}); none when an initial LR "
             f"has a single seed. Normalised score: per task, 0 = {NORMALISED_ZERO} LR's mean over the grid, "
             f"1 = the tuned baseline's mean (tasks where it is < {MIN_NORMALISING_GAP:g} point above are left "
             "out), averaged over tasks.")
    return "\n".join([*lines, "", notes]) + "\n"


def summary_table(results_by_task: Mapping[str, TaskResults], reference: str = "prodigy",
                  optimizer: str = "adam") -> str:
    """Markdown summary across tasks: ``summary_markdown(summary(results_by_task, reference, optimizer))``.

    ``results_by_task``: task name -> the list of ``EvalResult`` of that task (``report.evaluate_task``'s or
    ``harness.run_many``'s results), e.g. ``{"mnist-cnn2": results_a, "cifar10-cnn5": results_b}``.
    """
    return summary_markdown(summary(results_by_task, reference, optimizer))
