"""``ganno_jax.evaluate``: the historical name of the evaluation harness and tables, kept for users'
code and notebooks (``gj.evaluate.run(controller, task, ...)``). The code lives in
``ganno_jax.evaluation`` (``harness``, ``tables``) and, for the paper's grid and the seed check,
``ganno_jax.scales``; new code should import from there.
"""
from ganno_jax.evaluation import (CURVE_KEYS, EvalResult, csv_table, markdown_table, run, run_many, save_results,
                                  summary_rows)
from ganno_jax.scales import PAPER_INIT_LRS, check_seeds

__all__ = ["CURVE_KEYS", "PAPER_INIT_LRS", "EvalResult", "check_seeds", "csv_table", "markdown_table", "run",
           "run_many", "save_results", "summary_rows"]
