"""``ganno bench``'s outputs: the printed table, ``bench.csv`` and ``bench.png`` (log-log env steps/s vs env
copies, one line per model)."""
from __future__ import annotations

import csv
import io
import os

from ganno_jax.files import write_atomic

COLUMNS = ("task", "envs", "devices", "tau", "branches", "compile_s", "jax_env_steps_per_s", "jax_inner_steps_per_s",
           "torch_env_steps_per_s", "torch_inner_steps_per_s", "torch_threads", "jax_over_torch",
           "flops_per_inner_step", "matmul_flops_per_s", "fraction_of_matmul")


def table_line(row: dict) -> str:
    """One printed line of ``row`` (absent PyTorch columns print as '-')."""
    def fmt(key, spec, width):
        value = row.get(key)
        return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"
    return (f"{row['task']:<22}{row['envs']:>5}{row['devices']:>5}{row['compile_s']:>9.1f}"
            + fmt("jax_env_steps_per_s", ".2f", 11) + fmt("jax_inner_steps_per_s", ".0f", 12)
            + fmt("torch_env_steps_per_s", ".2f", 12) + fmt("jax_over_torch", ".2f", 10)
            + fmt("fraction_of_matmul", ".3f", 10))


TABLE_HEADER = (f"{'task':<22}{'envs':>5}{'devs':>5}{'compile':>9}{'jax env/s':>11}{'jax inner/s':>12}"
                f"{'torch env/s':>12}{'jax/torch':>10}{'of matmul':>10}")


def write_csv(path: str, rows: list[dict]) -> None:
    """``rows`` as CSV with ``COLUMNS`` (empty cells where a value was not measured)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS} for row in rows)
    write_atomic(path, buffer.getvalue())


def write_plot(path: str, rows: list[dict], title: str) -> None:
    """Log-log env steps/s against env copies: one solid line per task (JAX), dashed where PyTorch ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganno_jax.evaluation.plots import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for task in dict.fromkeys(row["task"] for row in rows):
        mine = [row for row in rows if row["task"] == task]
        (line,) = ax.plot([r["envs"] for r in mine], [r["jax_env_steps_per_s"] for r in mine], "o-", label=task)
        torch_rows = [r for r in mine if r.get("torch_env_steps_per_s")]
        if torch_rows:
            ax.plot([r["envs"] for r in torch_rows], [r["torch_env_steps_per_s"] for r in torch_rows], "x--",
                    color=line.get_color(), label=f"{task} (PyTorch, sequential)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("env copies")
    ax.set_ylabel("env steps / s")
    ax.set_title(title, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, os.fspath(path))

