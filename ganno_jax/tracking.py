"""Experiment tracking: a run's scalars streamed to TensorBoard and Weights & Biases (``--log tensorboard,wandb``).

Both writers are optional extras (``pip install 'ganno_jax[tracking]'``: ``tensorboardX``, no TensorFlow, and
``wandb``); ``check_names`` refuses an unknown name or a missing extra in one line before anything is written.

- ``tensorboard``: event files under ``<out>/tensorboard/``; a training update's scalars at step = the PPO
  update index (metrics.csv's ``update``), so a resumed run appends to the same curves.
- ``wandb``: the run under ``<out>/wandb/`` (``wandb.init(dir=out)``), project ``$WANDB_PROJECT`` or
  ``ganno_jax``, named after the folder; its id is kept in ``<out>/wandb/ganno_run_id`` and a resumed run
  continues that W&B run (``resume="allow"``). ``WANDB_MODE=offline`` works without network (``wandb sync``
  uploads later).

Training (``training.train_run``) logs each PPO update's metrics.csv row, ``train/<column>``, once the chunk's
checkpoint is saved (steps never pass the last checkpoint, so a resumed run never logs a step twice); the
trackers keep no rows. Evaluation (``ganno evaluate``) logs its final table as summary scalars
(``summary_scalars``). With several processes only process 0 tracks.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import uuid
from typing import Protocol, Sequence

from ganno_jax import distributed
from ganno_jax.checks import check_choice
from ganno_jax.files import write_atomic

#: Tracker name -> the package that writes it.
TRACKERS = {"tensorboard": "tensorboardX", "wandb": "wandb"}
INSTALL = "pip install 'ganno_jax[tracking]'"
WANDB_ID = "ganno_run_id"  # file in <out>/wandb/ holding the W&B run id


class Tracker(Protocol):
    """Where a run's scalars go: ``log`` one step's ``{name: float}``, ``summary`` final values, ``close``."""

    def log(self, step: int, scalars: dict) -> None: ...

    def summary(self, scalars: dict) -> None: ...

    def close(self) -> None: ...


def check_names(names: Sequence[str]) -> tuple:
    """``names`` without repeats, each one of ``TRACKERS`` with its package installed; else ``ValueError``
    (unknown name) or ``ImportError`` naming the package and ``INSTALL``. Imports nothing, writes nothing."""
    out = tuple(dict.fromkeys(check_choice("--log", name, TRACKERS) for name in names))
    for name in out:
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ImportError(f"--log {name} needs the {TRACKERS[name]} package: {INSTALL}")
    return out


def used_in(out_dir: str) -> tuple:
    """The trackers a run folder was written with (those whose folder ``<out_dir>/<name>/`` exists)."""
    return tuple(name for name in TRACKERS if os.path.isdir(os.path.join(out_dir, name)))


class TensorBoard:
    """Event files under ``<out_dir>/tensorboard/`` (tensorboardX); ``config`` as text on a fresh folder."""

    def __init__(self, out_dir: str, config: dict):
        from tensorboardX import SummaryWriter

        logdir = os.path.join(out_dir, "tensorboard")
        fresh = not os.path.isdir(logdir)
        # a suffix of its own: tensorboardX names event files by the second and opens them "wb"
        self.writer = SummaryWriter(logdir, filename_suffix="." + uuid.uuid4().hex[:8])
        if fresh:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)

    def log(self, step: int, scalars: dict) -> None:
        """Writes ``scalars`` at ``step`` and flushes them to disk."""
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def summary(self, scalars: dict) -> None:
        """TensorBoard has no summaries: the values at step 0."""
        self.log(0, scalars)

    def close(self) -> None:
        """Flushes and closes the event file."""
        self.writer.close()


class WandB:
    """A W&B run under ``<out_dir>/wandb/``, resumed by the id stored there (see the module docstring)."""

    def __init__(self, out_dir: str, config: dict):
        import wandb

        id_path = os.path.join(out_dir, "wandb", WANDB_ID)
        run_id = open(id_path).read().strip() if os.path.isfile(id_path) else uuid.uuid4().hex[:8]
        write_atomic(id_path, run_id)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "ganno_jax"), dir=out_dir, id=run_id,
                              resume="allow", name=os.path.basename(os.path.abspath(out_dir)),
                              config=json.loads(json.dumps(config, default=str)))

    def log(self, step: int, scalars: dict) -> None:
        """Logs ``scalars`` at ``step`` (steps must grow)."""
        self.run.log(dict(scalars), step=step)

    def summary(self, scalars: dict) -> None:
        """Sets the run's summary values."""
        self.run.summary.update(dict(scalars))

    def close(self) -> None:
        """Finishes the run (offline: its files are complete for ``wandb sync``)."""
        self.run.finish()


_WRITERS = {"tensorboard": TensorBoard, "wandb": WandB}


class Trackers:
    """Several trackers as one ``Tracker`` (none on a process other than 0); a context manager that closes them."""

    def __init__(self, trackers: Sequence[Tracker]):
        self.trackers = list(trackers)

    def log(self, step: int, scalars: dict) -> None:
        """``log`` on every tracker."""
        for t in self.trackers:
            t.log(step, scalars)

    def summary(self, scalars: dict) -> None:
        """``summary`` on every tracker."""
        for t in self.trackers:
            t.summary(scalars)

    def close(self) -> None:
        """``close`` on every tracker, once."""
        while self.trackers:
            self.trackers.pop().close()

    def __enter__(self) -> "Trackers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_trackers(names: Sequence[str], out_dir: str, config: dict) -> Trackers:
    """The trackers ``names`` (``check_names``) writing under the existing folder ``out_dir``, continuing what an
    earlier process wrote there; ``config``: JSON-like settings of the run (W&B config, TensorBoard text)."""
    names = check_names(names)
    return Trackers([_WRITERS[n](out_dir, config) for n in names] if distributed.is_writer() else [])


def tag(name: str) -> str:
    """``name`` as TensorBoard keeps it (every character but letters, digits and ``_-/.`` becomes ``_``), so both
    trackers show the same names: ``"train/val_acc@digits-mlp"`` -> ``"train/val_acc_digits-mlp"``."""
    return re.sub(r"[^\w\-/.]", "_", name)


def row_scalars(row: dict) -> dict:
    """A metrics.csv row (``run_log.metric_rows``) as ``{tag("train/<column>"): value}``, ``update`` (the step)
    left out."""
    return {tag(f"train/{k}"): float(v) for k, v in row.items() if k != "update"}


def summary_scalars(rows: Sequence[dict]) -> dict:
    """An evaluation's table (``evaluation.tables.summary_rows``: per method the mean/std final test accuracy in %
    per initial LR and over them) as ``{tag("eval/<method>/<stat>"): value}``: ``acc_mean_lr_<lr>``,
    ``acc_std_lr_<lr>``, ``acc_avg_mean``, ``acc_avg_std``, ``acc_lr_std``, ``acc_iqm`` (where the table has
    it), ``diverged_runs``; a cell the table leaves empty (None) is left out."""
    out = {}
    for r in rows:
        cells = {f"acc_{stat}_lr_{lr:g}": v for stat in ("mean", "std") for lr, v in zip(r["init_lrs"], r[stat])}
        cells.update({f"acc_{k}": r.get(k) for k in ("avg_mean", "avg_std", "lr_std", "iqm")},
                     diverged_runs=r["diverged_runs"])
        out.update({tag(f"eval/{r['method']}/{k}"): float(v) for k, v in cells.items() if v is not None})
    return out


def log_summary(names: Sequence[str], out_dir: str, config: dict, rows: Sequence[dict]) -> None:
    """Writes an evaluation's table ``rows`` (``summary_scalars``) to the trackers ``names`` under ``out_dir``."""
    with make_trackers(names, out_dir, config) as trackers:
        trackers.summary(summary_scalars(rows))
