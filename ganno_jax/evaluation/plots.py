"""Plots of evaluation results (matplotlib, Agg backend, PNG files).

- ``plot_schedule``: per-layer learning rates of one run with its test accuracy (paper Figs. 1-2);
- ``plot_accuracy_curves``: mean +- std test accuracy per env step for every method (Fig. 3);
- ``plot_final_vs_lr``: final test accuracy against the initial LR per method;
- ``plot_training_schedules``: per-layer LRs chosen during training at logged MARL episodes, with the
  training loss (Fig. 1; from a run folder's ``schedules.csv``, see ``training``).
"""
from __future__ import annotations

import csv
import os
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganno_jax import distributed  # noqa: E402
from ganno_jax.evaluation.harness import EvalResult  # noqa: E402


def save_figure(fig, path: str) -> str:
    """Writes ``fig`` to ``path`` as PNG atomically (temp file, then ``os.replace``), closes it; returns ``path``.
    With several processes only process 0 writes (as ``files.write_atomic``)."""
    if not distributed.is_writer():
        plt.close(fig)
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _lr_index(result: EvalResult, init_lr: Optional[float]) -> int:
    if init_lr is None:
        return len(result.init_lrs) // 2
    return int(np.argmin(np.abs(np.log10(np.maximum(result.init_lrs, 1e-12)) - np.log10(max(init_lr, 1e-12)))))


def plot_schedule(result: EvalResult, path: str, init_lr: Optional[float] = None, seed: int = 0,
                  layer_names: Optional[Sequence[str]] = None) -> str:
    """Per-layer LR schedule (left axis, one line per layer) and test accuracy (right axis) of one run."""
    i = _lr_index(result, init_lr)
    lrs = result.curves["lrs"][i, seed]  # [T, N]
    acc = 100 * result.curves["test_acc"][i, seed]
    steps = np.arange(1, lrs.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for layer in range(lrs.shape[1]):
        label = layer_names[layer] if layer_names else f"layer {layer}"
        ax.plot(steps, lrs[:, layer], label=label, lw=1.5)
    ax.set_xlabel("env step (tau optimiser steps)")
    ax.set_ylabel("learning rate")
    twin = ax.twinx()
    measured = np.isfinite(acc)  # every step, or every test_every-th and the last (harness.run_many)
    twin.plot(steps[measured], acc[measured], "k--", lw=1.5, label="test accuracy")
    twin.set_ylabel("test accuracy (%)")
    ax.legend(loc="upper left", fontsize=7)
    twin.legend(loc="lower right", fontsize=7)
    ax.set_title(f"{result.method} on {result.task_name}, initial LR {result.init_lrs[i]:g}, seed {seed}")
    return save_figure(fig, path)


def plot_accuracy_curves(results: Sequence[EvalResult], path: str, init_lr: Optional[float] = None) -> str:
    """Mean +- std (over seeds) test accuracy per env step, one line per method, at one initial LR."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for res in results:
        i = _lr_index(res, init_lr)
        acc = 100 * res.curves["test_acc"][i]  # [S, T]
        steps = np.arange(1, acc.shape[1] + 1)
        mean, std = acc.mean(0), acc.std(0)
        measured = np.isfinite(mean)  # every step, or every test_every-th and the last (harness.run_many)
        steps, mean, std = steps[measured], mean[measured], std[measured]
        ax.plot(steps, mean, label=res.method, lw=1.5)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("env step (tau optimiser steps)")
    ax.set_ylabel("test accuracy (%)")
    lr = results[0].init_lrs[_lr_index(results[0], init_lr)]
    ax.set_title(f"{results[0].task_name}, initial LR {lr:g}")
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def plot_final_vs_lr(results: Sequence[EvalResult], path: str) -> str:
    """Final test accuracy (mean +- std over seeds) against the initial LR (log axis), per method."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for res in results:
        acc = 100 * res.final_acc  # [L, S]
        lrs = np.maximum(np.asarray(res.init_lrs), 1e-6)
        ax.errorbar(lrs, acc.mean(1), yerr=acc.std(1), marker="o", capsize=3, label=res.method, lw=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("initial learning rate")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(results[0].task_name)
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def plot_training_schedules(csv_path: str, path: str, title: Optional[str] = None) -> str:
    """Fig. 1 from a run's ``schedules.csv`` (columns episode, opt_step, lr_<i>..., train_loss, val_acc):
    one panel per layer (its LR against the inner optimiser step, one line per logged episode) and one
    panel of the training loss (solid) and validation accuracy (dashed, right axis) per episode."""
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path!r} has no rows to plot")
    layers = [k for k in rows[0] if k.startswith("lr_")]
    by_episode = {ep: sorted((r for r in rows if int(r["episode"]) == ep), key=lambda r: int(r["opt_step"]))
                  for ep in sorted({int(r["episode"]) for r in rows})}
    cols = min(3, len(layers) + 1)
    nrows = -(-(len(layers) + 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    axes = axes.ravel()
    loss_ax = axes[len(layers)]
    twin = loss_ax.twinx()
    for ep, ep_rows in by_episode.items():
        steps = [int(r["opt_step"]) for r in ep_rows]
        for ax, name in zip(axes, layers):
            ax.plot(steps, [float(r[name]) for r in ep_rows], lw=1.5, label=f"episode {ep}")
        line, = loss_ax.plot(steps, [float(r["train_loss"]) for r in ep_rows], lw=1.5, label=f"episode {ep}")
        twin.plot(steps, [100 * float(r["val_acc"]) for r in ep_rows], "--", lw=1, color=line.get_color())
    twin.set_ylabel("validation accuracy (%, dashed)")
    for ax, name in zip(axes, layers):
        ax.set_title(f"layer {name[3:]}", fontsize=9)
        ax.set_ylabel("learning rate")
    loss_ax.set_title("training loss (solid)", fontsize=9)
    loss_ax.set_ylabel("training loss")
    for ax in axes[:len(layers) + 1]:
        ax.set_xlabel("inner optimiser step")
    for ax in axes[len(layers) + 1:]:
        ax.axis("off")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
