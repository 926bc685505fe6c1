"""A task's results folder: evaluate controllers and write tables + plots (``evaluate_task``); an
experiment's report over several tasks (``finish``: ``README.md`` + ``summary.json``).

Used by ``ganno evaluate``, ``ganno demo`` and every ``experiments/*.py`` script, so their folders
have one layout: ``<name>.{json,md,csv}`` and ``<prefix>accuracy_curves.png`` /
``<prefix>final_vs_lr.png`` / ``<prefix><method>_schedule.png`` per task. While a task is evaluated its
finished chunks of runs lie in ``<folder>/partial/`` (``evaluation.partial``; ``resume`` reads them back after
a kill); once its results are written that folder is deleted.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional, Sequence

from ganno_jax import distributed
from ganno_jax.env.inner import InnerTrainer
from ganno_jax.evaluation import plots
from ganno_jax.evaluation.controllers import PolicyController
from ganno_jax.evaluation.harness import run_many
from ganno_jax.evaluation.partial import GRID_FILE, file_stem, remove
from ganno_jax.evaluation.tables import markdown_table, save_results, summary_rows
from ganno_jax.files import check_out, write_atomic

#: Sub-folder of a results folder holding the finished chunks of runs of an evaluation under way.
PARTIAL = "partial"


def check_evaluation_out(folder: str, overwrite: bool, resume: bool, protect: Sequence[Optional[str]] = ()) -> None:
    """Checks, changing nothing, that an evaluation may write ``folder``: new or empty; any folder with
    ``overwrite`` (``files.check_out``, ``protect`` as there); with ``resume`` also one holding an unfinished
    evaluation (``<folder>/partial/grid.json``; ``evaluate_task`` compares its grid). Else ``FileExistsError``
    naming the flag that helps; ``resume`` with ``overwrite`` is a ``ValueError``."""
    unfinished = os.path.exists(os.path.join(folder, PARTIAL, GRID_FILE))
    if resume and overwrite:
        raise ValueError("give --resume (continue an unfinished evaluation) or --overwrite (start again), not both")
    if resume and unfinished:
        return
    if resume:
        finished = os.path.exists(os.path.join(folder, "results.json"))
        done = " (its evaluation finished: results.json)" if finished else ""
        hint = f"it holds no unfinished evaluation to resume{done}; pass --overwrite to run it again"
    elif unfinished:
        hint = "it holds an unfinished evaluation: repeat its command with --resume to continue it, or pass --overwrite"
    else:
        hint = "pass --overwrite to replace it"
    check_out(folder, overwrite, protect, hint=hint)


def evaluate_task(methods: Sequence, task, init_lrs: Sequence[float], seeds: int, folder: str,
                  weight_decay: Optional[float] = None, seed: int = 0, name: str = "results",
                  plot_lr: Optional[float] = None, plot_prefix: Optional[str] = None,
                  max_parallel_runs: Optional[int] = None, devices: Optional[int] = None,
                  progress: bool = False, test_every: int = 1, resume: bool = False) -> tuple[list, str]:
    """Evaluates ``methods`` on ``task``; writes ``<name>.{json,md,csv}`` (the JSON records the task's fields
    under ``task``) and PNG plots to ``folder``.

    ``max_parallel_runs`` / ``devices`` / ``progress`` / ``test_every``: see ``harness.run_many``. Finished chunks
    of runs go to ``<folder>/partial/`` (``PARTIAL``) as they complete; ``resume`` reads back those of a killed
    evaluation of the same grid (else ``ValueError``) instead of running them; the folder is deleted at the end.

    Returns (results, Markdown table). Plots, named ``<plot_prefix>accuracy_curves.png`` etc. (prefix
    default ``<name>_``): accuracy curves at ``plot_lr`` (default: 1e-3 or the nearest grid LR), final
    accuracy vs initial LR (grids of >= 2 LRs), and ``<prefix><method>_schedule.png`` (``file_stem(method)``),
    the per-layer schedule of the first learned policy (the first method when there is none).
    """
    partial = os.path.join(folder, PARTIAL)
    results = run_many(methods, task, init_lrs=init_lrs, seeds=seeds, weight_decay=weight_decay, seed=seed,
                       max_parallel_runs=max_parallel_runs, devices=devices, progress=progress,
                       test_every=test_every, partial=partial, resume=resume)
    print(f"[evaluate] {task.name}: {results[0].plan.describe()}")
    save_results(results, folder, name, extra={"task": dataclasses.asdict(task)}, optimizer=task.optimizer)
    prefix = f"{name}_" if plot_prefix is None else plot_prefix
    lr = 1e-3 if plot_lr is None else plot_lr
    plots.plot_accuracy_curves(results, os.path.join(folder, f"{prefix}accuracy_curves.png"), init_lr=lr)
    if len(init_lrs) > 1:
        plots.plot_final_vs_lr(results, os.path.join(folder, f"{prefix}final_vs_lr.png"))
    shown = next((r for r, m in zip(results, methods) if isinstance(m, PolicyController)), results[0])
    plots.plot_schedule(shown, os.path.join(folder, f"{prefix}{file_stem(shown.method)}_schedule.png"), init_lr=lr,
                        layer_names=[layer.name for layer in InnerTrainer(task).layers])
    remove(partial)
    return results, markdown_table(summary_rows(results, task.optimizer))


def finish(out: str, title: str, sections: Sequence[tuple[str, str]], start: float,
           extra: Optional[dict] = None) -> str:
    """Writes ``out/README.md`` (title, elapsed time, one section per (heading, table)) and
    ``out/summary.json``; prints the report; returns it."""
    elapsed = time.perf_counter() - start
    text = [f"# {title}\n\n_{elapsed / 60:.1f} min on this machine_\n"]
    text += [f"\n## {heading}\n\n{table}" for heading, table in sections]
    report = "".join(text)
    write_atomic(os.path.join(out, "README.md"), report)
    summary = {"title": title, "elapsed_s": elapsed, "sections": [{"heading": h, "table": t} for h, t in sections],
               **(extra or {})}
    write_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
    if not distributed.is_writer():  # several processes: process 0 wrote the files and prints the report
        return report
    print(report)
    print(f"[experiment] wrote {out}/ (README.md, summary.json, results.{{json,md,csv}}, plots) in {elapsed:.0f}s")
    return report
