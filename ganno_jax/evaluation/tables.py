"""Tables of evaluation results, as in the paper, and the files ``save_results`` writes.

Per method: mean +- std (over seeds) of the final test accuracy (%) per initial LR, the average over
LRs (mean +- std over seeds of each seed's average) and, to judge robustness to the initial LR, the
std across LRs of the per-LR means, plus the diverged runs. ``summary_rows`` computes them,
``markdown_table`` / ``csv_table`` format them, ``save_results`` writes ``<name>.{json,md,csv}``.

Each row also records its weight decay and how it entered the step (``weight_decay_mode``: ``l2``, added
to the gradient before the optimiser, or ``decoupled``, AdamW-style); the Markdown table says which
rows use which under the table, and the CSV has the two columns. An optimiser baseline that runs under a
schedule other than a constant LR is labelled with it in Markdown (``lamb`` -> ``lamb (cosine)``, as
GANNO's Table 1 "LAMB w/ cosine decay"); its ``method`` stays the controller's name.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Optional, Sequence

import numpy as np

from ganno_jax.evaluation.controllers import OPTIMIZER_BASELINES
from ganno_jax.evaluation.harness import EvalResult
from ganno_jax.files import write_atomic


def summary_rows(results: Sequence[EvalResult]) -> list[dict]:
    """Per method: mean/std final test accuracy (%) per init LR, average, std across LRs, divergences."""
    rows = []
    for res in results:
        acc = 100.0 * np.asarray(res.final_acc, np.float64)  # [L, S]
        per_seed_avg = acc.mean(axis=0)
        rows.append({
            "method": res.method, "init_lrs": list(res.init_lrs),
            "mean": acc.mean(axis=1).tolist(), "std": acc.std(axis=1).tolist(),
            "avg_mean": float(per_seed_avg.mean()), "avg_std": float(per_seed_avg.std()),
            "lr_std": float(acc.mean(axis=1).std()), "diverged_runs": res.diverged_runs, "runs": int(acc.size),
            "weight_decay": float(res.weight_decay), "weight_decay_mode": res.weight_decay_mode,
        })
    return rows


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


def _cells(row: dict) -> list[str]:
    cells = [f"{m:.2f} ± {s:.2f}" for m, s in zip(row["mean"], row["std"])]
    return [label(row["method"]), *cells, f"{row['avg_mean']:.2f} ± {row['avg_std']:.2f}", f"{row['lr_std']:.2f}",
            f"{row['diverged_runs']}/{row['runs']}"]


def _header(rows: list[dict]) -> list[str]:
    return ["Method", *[f"{lr:g}" for lr in rows[0]["init_lrs"]], "Average", "Std across LRs", "Diverged"]


def markdown_table(rows: list[dict]) -> str:
    """Paper-style Markdown table (the best mean in each column bold), then a line naming each row's weight decay."""
    header = _header(rows)
    table = [_cells(r) for r in rows]
    columns = [r["mean"] for r in rows]
    for j in range(len(rows[0]["mean"])):
        best = int(np.argmax([c[j] for c in columns]))
        table[best][1 + j] = f"**{table[best][1 + j]}**"
    best_avg = int(np.argmax([r["avg_mean"] for r in rows]))
    table[best_avg][-3] = f"**{table[best_avg][-3]}**"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join([*lines, "", decay_note(rows)]) + "\n"


def csv_table(rows: list[dict]) -> str:
    """The same table as CSV (numbers unformatted: mean and std columns per init LR)."""
    out = io.StringIO()
    writer = csv.writer(out)
    lrs = rows[0]["init_lrs"]
    writer.writerow(["method", *[f"{k}_{lr:g}" for lr in lrs for k in ("mean", "std")],
                     "avg_mean", "avg_std", "lr_std", "diverged_runs", "runs", "weight_decay", "weight_decay_mode"])
    for r in rows:
        pairs = [v for m, s in zip(r["mean"], r["std"]) for v in (f"{m:.4f}", f"{s:.4f}")]
        writer.writerow([r["method"], *pairs, f"{r['avg_mean']:.4f}", f"{r['avg_std']:.4f}", f"{r['lr_std']:.4f}",
                         r["diverged_runs"], r["runs"], f"{r['weight_decay']:g}", r["weight_decay_mode"]])
    return out.getvalue()


def save_results(results: Sequence[EvalResult], folder: str, name: str = "results",
                 extra: Optional[dict] = None) -> dict:
    """Writes ``<name>.json`` (all curves, then the top-level ``extra`` entries), ``<name>.md`` and
    ``<name>.csv`` (table) atomically; returns paths."""
    rows = summary_rows(results)
    paths = {ext: os.path.join(folder, f"{name}.{ext}") for ext in ("json", "md", "csv")}
    write_atomic(paths["json"], json.dumps({"summary": rows, "results": [r.to_dict() for r in results],
                                            **(extra or {})}))
    write_atomic(paths["md"], markdown_table(rows))
    write_atomic(paths["csv"], csv_table(rows))
    return paths
