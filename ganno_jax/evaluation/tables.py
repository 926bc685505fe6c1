"""Tables of evaluation results, as in the paper, and the files ``save_results`` writes.

Per method: mean +- std (over seeds) of the final test accuracy (%) per initial LR, the average over
LRs (mean +- std over seeds of each seed's average) and, to judge robustness to the initial LR, the
std across LRs of the per-LR means, plus the diverged runs. ``summary_rows`` computes them,
``markdown_table`` / ``csv_table`` format them, ``save_results`` writes ``<name>.{json,md,csv}``.

Statistics as the learned-optimisation field reports them (``statistics``): every row also has the
interquartile mean (IQM) of its L x S runs with a stratified-bootstrap 95 % interval (``iqm``, ``iqm_ci``; None
with a single seed), and when constant / cosine / one-cycle schedules were evaluated the table ends with the
tuned baseline's row (``tuned <optimizer>``: the best (schedule, initial LR) cell, chosen on validation
accuracy; ``tuned`` says which; its per-LR cells are None except the chosen LR's, ``lr_std`` is None).

Each row also records its weight decay and how it entered the step (``weight_decay_mode``: ``l2``, added
to the gradient before the optimiser, or ``decoupled``, AdamW-style); the Markdown table says which
rows use which under the table, and the CSV has the two columns. An optimiser baseline that runs under a
schedule other than a constant LR is labelled with it in Markdown (``lamb`` -> ``lamb (cosine)``, as
GANNO's Table 1 "LAMB w/ cosine decay"); its ``method`` stays the controller's name.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import os
from typing import Optional, Sequence

import numpy as np

from ganno_jax.evaluation import statistics
from ganno_jax.evaluation.controllers import OPTIMIZER_BASELINES
from ganno_jax.evaluation.harness import EvalResult
from ganno_jax.files import write_atomic


def summary_rows(results: Sequence[EvalResult], optimizer: str = "adam") -> list[dict]:
    """Per method: mean/std final test accuracy (%) per init LR, average, IQM [95 % CI], std across LRs,
    divergences; then the tuned baseline's row (``statistics.tuned_choice``, named ``tuned <optimizer>``, the
    task's inner optimiser) when one of ``statistics.TUNED_SCHEDULES`` was evaluated."""
    rows = [_row(res) for res in results]
    choice = statistics.tuned_choice(results)
    if choice is not None:
        rows.append(_tuned_row(choice, optimizer))
    return rows


def _row(res: EvalResult) -> dict:
    acc = 100.0 * np.asarray(res.final_acc, np.float64)  # [L, S]
    per_seed_avg = acc.mean(axis=0)
    iqm, iqm_ci = statistics.iqm_with_ci(acc)
    return {
        "method": res.method, "init_lrs": list(res.init_lrs),
        "mean": acc.mean(axis=1).tolist(), "std": acc.std(axis=1).tolist(),
        "avg_mean": float(per_seed_avg.mean()), "avg_std": float(per_seed_avg.std()),
        "lr_std": float(acc.mean(axis=1).std()), "diverged_runs": res.diverged_runs, "runs": int(acc.size),
        "weight_decay": float(res.weight_decay), "weight_decay_mode": res.weight_decay_mode,
        "iqm": iqm, "iqm_ci": iqm_ci, "tuned": None,
    }


def _tuned_row(choice: statistics.TunedChoice, optimizer: str) -> dict:
    """The row of the tuned cell alone (its seeds), laid out on the full grid: None at the other LRs."""
    res, index = choice.result, choice.lr_index
    cell = dataclasses.replace(res, method=statistics.tuned_name(optimizer), init_lrs=(res.init_lrs[index],),
                               curves={k: np.asarray(v)[index:index + 1] for k, v in res.curves.items()})
    row = _row(cell)
    on_grid = [[v[0] if i == index else None for i in range(len(res.init_lrs))] for v in (row["mean"], row["std"])]
    return {**row, "init_lrs": list(res.init_lrs), "mean": on_grid[0], "std": on_grid[1], "lr_std": None,
            "tuned": choice.describe()}


#: How each weight-decay mode enters the step, for the note under a Markdown table.
DECAY_NOTES = {"l2": "L2 (added to the gradient before the optimiser)",
               "decoupled": "decoupled (AdamW-style, lr * λ * θ after the optimiser)"}


def label(method: str) -> str:
    """Markdown label of a method: an optimiser baseline under a non-constant schedule names it
    (``lamb`` -> ``lamb (cosine)``); every other method is its name."""
    schedule = OPTIMIZER_BASELINES.get(method, "constant")
    return method if schedule == "constant" else f"{method} ({schedule})"


def decay_note(rows: list[dict]) -> str:
    """One line naming, per (weight decay, mode), the methods that use it."""
    groups: dict[tuple, list[str]] = {}
    for r in rows:
        groups.setdefault((r["weight_decay"], r["weight_decay_mode"]), []).append(label(r["method"]))
    parts = [f"λ = {wd:g}, {DECAY_NOTES[mode]}: {', '.join(methods)}" for (wd, mode), methods in groups.items()]
    return "Weight decay: " + "; ".join(parts) + "."


def _number(value: Optional[float], spec: str = ".2f", missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def _iqm_cell(row: dict) -> str:
    ci = row.get("iqm_ci")
    return f"{_number(row.get('iqm'))} [{'—' if ci is None else f'{ci[0]:.2f}, {ci[1]:.2f}'}]"


def _label(row: dict) -> str:
    tuned = row.get("tuned")
    return label(row["method"]) if tuned is None else f"{row['method']} ({tuned['schedule']}, {tuned['init_lr']:g})"


def _cells(row: dict) -> list[str]:
    cells = ["—" if m is None else f"{m:.2f} ± {s:.2f}" for m, s in zip(row["mean"], row["std"])]
    return [_label(row), *cells, f"{row['avg_mean']:.2f} ± {row['avg_std']:.2f}", _iqm_cell(row),
            _number(row["lr_std"]), f"{row['diverged_runs']}/{row['runs']}"]


def _header(rows: list[dict]) -> list[str]:
    return ["Method", *[f"{lr:g}" for lr in rows[0]["init_lrs"]], "Average", "IQM [95% CI]", "Std across LRs",
            "Diverged"]


def _bold_best(table: list[list[str]], column: int, values: Sequence[Optional[float]]) -> None:
    """Bolds the cell of ``column`` in the row of the largest of ``values`` (None: no value, skipped)."""
    scores = [-np.inf if v is None else v for v in values]
    best = int(np.argmax(scores))
    if scores[best] > -np.inf:
        table[best][column] = f"**{table[best][column]}**"


def statistics_note(rows: list[dict]) -> str:
    """The lines under a Markdown table defining the IQM column and, if there is one, the tuned row."""
    note = (f"IQM: interquartile mean of the initial LR × seed runs; [95% CI]: stratified bootstrap (seeds "
            f"resampled within each initial LR; percentile, {statistics.RESAMPLES} resamples, seed "
            f"{statistics.SEED}); — with a single seed.")
    for row in rows:
        tuned = row.get("tuned")
        if tuned is not None:
            on = ("mean final validation accuracy" if tuned["chosen_on"] == "val_acc" else
                  "mean final TEST accuracy (these results hold no validation accuracy: an optimistic choice)")
            note += (f"\n{row['method']}: the task's optimiser under the best (schedule, initial LR) cell of "
                     f"{', '.join(tuned['candidates'])}, chosen on the {on}: {tuned['schedule']} at "
                     f"{tuned['init_lr']:g}; a swept baseline, its spread is over seeds only.")
    return note


def markdown_table(rows: list[dict]) -> str:
    """Paper-style Markdown table (the best mean in each column bold), then notes defining the IQM and tuned
    row (``statistics_note``) and a line naming each row's weight decay."""
    header = _header(rows)
    table = [_cells(r) for r in rows]
    lrs = len(rows[0]["init_lrs"])
    for j in range(lrs):
        _bold_best(table, 1 + j, [r["mean"][j] for r in rows])
    _bold_best(table, 1 + lrs, [r["avg_mean"] for r in rows])
    _bold_best(table, 2 + lrs, [r.get("iqm") for r in rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join([*lines, "", statistics_note(rows), "", decay_note(rows)]) + "\n"


def csv_table(rows: list[dict]) -> str:
    """The same table as CSV (numbers unformatted: mean and std columns per init LR; empty where a row has no
    value), then the IQM and its interval, and the tuned row's schedule, initial LR and selection metric."""
    out = io.StringIO()
    writer = csv.writer(out)
    lrs = rows[0]["init_lrs"]
    writer.writerow(["method", *[f"{k}_{lr:g}" for lr in lrs for k in ("mean", "std")],
                     "avg_mean", "avg_std", "lr_std", "diverged_runs", "runs", "weight_decay", "weight_decay_mode",
                     "iqm", "iqm_ci_low", "iqm_ci_high", "tuned_schedule", "tuned_init_lr", "tuned_chosen_on"])
    value = functools.partial(_number, spec=".4f", missing="")
    for r in rows:
        pairs = [value(v) for m, s in zip(r["mean"], r["std"]) for v in (m, s)]
        ci, tuned = r.get("iqm_ci") or (None, None), r.get("tuned") or {}
        writer.writerow([r["method"], *pairs, value(r["avg_mean"]), value(r["avg_std"]), value(r["lr_std"]),
                         r["diverged_runs"], r["runs"], f"{r['weight_decay']:g}", r["weight_decay_mode"],
                         value(r.get("iqm")), value(ci[0]), value(ci[1]), tuned.get("schedule", ""),
                         format(tuned["init_lr"], "g") if tuned else "", tuned.get("chosen_on", "")])
    return out.getvalue()


def save_results(results: Sequence[EvalResult], folder: str, name: str = "results",
                 extra: Optional[dict] = None, optimizer: str = "adam") -> dict:
    """Writes ``<name>.json`` (all curves, then the top-level ``extra`` entries), ``<name>.md`` and
    ``<name>.csv`` (table; ``optimizer``: the task's, naming the tuned row) atomically; returns paths."""
    rows = summary_rows(results, optimizer)
    paths = {ext: os.path.join(folder, f"{name}.{ext}") for ext in ("json", "md", "csv")}
    write_atomic(paths["json"], json.dumps({"summary": rows, "results": [r.to_dict() for r in results],
                                            **(extra or {})}))
    write_atomic(paths["md"], markdown_table(rows))
    write_atomic(paths["csv"], csv_table(rows))
    return paths
