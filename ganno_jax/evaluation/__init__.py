"""Evaluation: run controllers over initial-LR x seed grids and report the paper's tables and plots.

- ``harness``: ``run`` / ``run_many`` -> ``EvalResult`` (grids as a flat run axis, in chunks that fit
  memory, split over devices: ``chunked``);
- ``controllers``: what is evaluated (learned / random policies, schedules, other optimisers);
- ``tables``: summaries, Markdown, CSV, JSON (``save_results``);
- ``plots`` and ``report`` (import them explicitly: they load matplotlib): figures, and a task's
  results folder (``evaluate_task``) / an experiment's report (``finish``).

``ganno_jax.evaluate`` is this package's harness and tables under their historical name.
"""
from ganno_jax.evaluation import chunked, controllers, harness, tables
from ganno_jax.evaluation.chunked import InsufficientMemoryError
from ganno_jax.evaluation.harness import CURVE_KEYS, EvalResult, run, run_many
from ganno_jax.evaluation.tables import csv_table, markdown_table, save_results, summary_rows

__all__ = [
    "chunked", "controllers", "harness", "tables", "InsufficientMemoryError", "CURVE_KEYS", "EvalResult", "run",
    "run_many", "csv_table", "markdown_table", "save_results", "summary_rows",
]
