"""The flags shared by the ``ganno`` command (``cli.py``) and the ``experiments/*.py`` scripts, each defined once.

``FLAGS`` holds each shared flag's type, choices (read from the constants that hold them) and help, and
those of the command's flags whose choices a constant holds; a front door adds one with ``add(parser,
flag, default, shown, note)``. Defaults that legitimately differ by front door are passed there and shown
in --help, e.g. ``--seeds``: 5 in ``ganno evaluate``, the scale's in the scripts. ``add_task_sizes`` adds
the task-size group (``TASK_SIZES``) both doors take.

A task's sizes (``task_from``), lowest first: the registry's task; the scale's sizes (the scripts' default
scale); what a trained run lends the task it is evaluated on (``carried``: its tau, horizon, optimiser and
weight-decay mode and data folder, and on its own dataset its width and batch size); an explicit
``--scale``; the task-size flags given. The run's ``EnvParams`` (action set, bounds, ``control_wd``,
variant) travel whole with its controller (``evaluation.controllers.from_run``).
"""
from __future__ import annotations

import argparse
import warnings
from typing import Optional

from ganno_jax import tasks
from ganno_jax.baselines.schedules import schedule_names
from ganno_jax.env.actions import ACTION_SETS
from ganno_jax.env.layerwise import REWARD_MODES
from ganno_jax.env.wrappers import VARIANTS
from ganno_jax.evaluation.controllers import EVAL_ACTIONS, baseline_names
from ganno_jax.scales import GANNO_SCALES, SCALE_NAMES
from ganno_jax.tasks.config import WEIGHT_DECAY_MODES
from ganno_jax.tasks.families import FAMILIES
from ganno_jax.tasks.optimizers import OPTIMIZERS
from ganno_jax.tracking import INSTALL, TRACKERS


def parse_floats(text: str) -> tuple:
    """``"1e-3,3e-3"`` -> (0.001, 0.003); a malformed list is a ValueError naming the bad item."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    try:
        return tuple(float(s) for s in items)
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of numbers") from None


def parse_names(text: str) -> tuple:
    """``"a, b,"`` -> ("a", "b"): a comma-separated list of names (spaces stripped, empty items dropped)."""
    return tuple(x.strip() for x in str(text).split(",") if x.strip())


#: Task fields set by the task-size flags (``--tau`` ... ``--data-dir``), in --help order.
TASK_SIZES = ("tau", "horizon", "batch_size", "width", "optimizer", "weight_decay_mode", "eval_batch", "test_batch",
              "data_dir")
#: Task fields a trained run lends every task it is evaluated on (its data folder: where files are found).
RUN_FIELDS = ("tau", "horizon", "optimizer", "weight_decay_mode", "data_dir")
#: ... and those it lends only a task on its own dataset (a width or batch size is sized for its data).
SAME_DATASET_FIELDS = ("width", "batch_size")

_BASELINES = dict(type=parse_names, metavar="NAME,NAME",
                  help="baseline controllers, of: " + ", ".join(baseline_names()))
#: Shared flags and flags with choices: ``add_argument`` keywords but ``default`` (a front door's, see ``add``),
#: and ``shown``, the default --help names when the front door gives none.
FLAGS = {
    "--out": dict(metavar="DIR", help="output folder"),
    "--overwrite": dict(action="store_true", help="replace an existing non-empty output folder"),
    "--scale": dict(choices=SCALE_NAMES, help="named sizes (scales.GANNO_SCALES): smoke (seconds, tests), cpu "
                                              "(minutes on 2 CPU cores, the demo's), paper (an accelerator)"),
    "--task": dict(metavar="TASK", help="task name <dataset>-<model> (or one registered by an --import)"),
    "--tau": dict(type=int, metavar="N", help="optimiser steps per env step", shown="the task's, 100"),
    "--horizon": dict(type=int, metavar="N", help="env steps per episode", shown="the task's"),
    "--batch-size": dict(type=int, metavar="N", help="inner minibatch size", shown="the task's"),
    "--width": dict(type=int, metavar="N", help="model width multiplier", shown="the task's, 16"),
    "--optimizer": dict(metavar="NAME", help="inner optimiser whose per-layer LRs the agents set, of: "
                        + ", ".join(OPTIMIZERS) + " (or one registered by an --import)", shown="the task's, adam"),
    "--weight-decay-mode": dict(choices=WEIGHT_DECAY_MODES, help="how the task's optimiser applies weight decay: "
                                "l2 (added to the gradient, the paper) or decoupled (AdamW)", shown="the task's"),
    "--eval-batch": dict(type=int, metavar="N", help="train/validation examples measured per env step",
                         shown="the task's, 512"),
    "--test-batch": dict(type=int, metavar="N", aliases=("--test-chunk",),
                         help="test examples measured at once in evaluation; lower it if one run does not fit memory",
                         shown="the task's, 500"),
    "--data-dir": dict(metavar="DIR", help="folder with MNIST/Fashion-MNIST IDX files, CIFAR pickles and <name>.npz "
                                           "datasets saved by data.from_arrays(..., save_to=DIR)"),
    "--init-lrs": dict(type=parse_floats, metavar="LR,LR", help="initial-LR grid of the evaluation"),
    "--seeds": dict(type=int, metavar="N", help="evaluation seeds per initial LR"),
    "--eval-actions": dict(choices=EVAL_ACTIONS, help="how learned agents act in evaluation: sample from the policy "
                                                      "(Mava's executors, the paper) or greedy"),
    "--methods": _BASELINES,
    "--baselines": _BASELINES,
    "--schedules": dict(type=parse_names, metavar="NAME,NAME", help="handcrafted LR schedules, of: "
                                                                    + ", ".join(schedule_names())),
    "--weight-decays": dict(type=parse_floats, metavar="WD,WD", help="weight decays every method is evaluated at"),
    "--seed": dict(type=int, metavar="N", help="master PRNG seed"),
    "--members": dict(type=int, metavar="N", aliases=("--train-seeds",),
                      help="GANNO policies trained at once (one jax.vmap over keys; a table's ± then covers trained "
                           "members x evaluation seeds; the paper's covers three seeds)"),
    "--variant": dict(choices=tuple(VARIANTS), help="training variant (the paper's ablations)"),
    "--reward-mode": dict(choices=REWARD_MODES, help="reward of training: accuracy, difference against the joint "
                                                     "no-op (the paper) or per-agent difference"),
    "--actions": dict(choices=tuple(ACTION_SETS), dest="action_set",
                      help="the agents' LR actions: paper (Appendix D's nine, at most x1.1 per decision) or wide (also "
                           "x1.25, /1.25, x2, /2; beyond the paper, for short CPU-scale runs)"),
    "--task-family": dict(metavar="NAME", help="--tasks preset from tasks/families.py: " + ", ".join(FAMILIES)),
    "--max-parallel-runs": dict(type=int, metavar="N", help="evaluation runs vmapped at once",
                                shown="as many as fit the free memory"),
    "--test-every": dict(type=int, metavar="K", help="evaluation measures the whole test split after every K-th "
                         "decision and the last only (sparser accuracy curves, same tables; the skipped passes "
                         "cost nothing)"),
    "--devices": dict(type=int, metavar="N", help="devices the work is split over (CPU: one device per core)"),
    "--no-progress": dict(action="store_true", help="no progress bars"),
    "--log": dict(type=parse_names, action="extend", metavar="NAME,NAME",
                  help="experiment trackers, of: " + ", ".join(TRACKERS) + " (repeatable; events under "
                       "<out>/tensorboard/, <out>/wandb/; extra: " + INSTALL + ")"),
}


def add(parser, flag: str, default=None, shown: Optional[str] = None, note: str = "", **extra) -> argparse.Action:
    """Adds the shared ``flag`` to ``parser`` (a parser or an argument group) with ``default``; its help is
    ``FLAGS``' with ``note`` appended and ``(default: <shown>)`` (``shown``, else ``default``, else the
    flag's own; nothing when all are None). ``extra``: further ``add_argument`` keywords (``required``)."""
    spec = dict(FLAGS[flag])
    common = spec.pop("shown", None)
    shown = next((text for text in (shown, _show(default), common) if text is not None), None)
    text = spec.pop("help") + note + ("" if shown is None else f" (default: {shown})")
    if default is not None:
        spec["default"] = default
    return parser.add_argument(flag, *spec.pop("aliases", ()), help=text, **spec, **extra)


def _show(default) -> Optional[str]:
    if default is None or default is False:
        return None
    if isinstance(default, tuple):
        return ",".join(v if isinstance(v, str) else f"{v:g}" for v in default)
    return str(default)


def add_task_sizes(parser, data_dir_note: str = "") -> None:
    """Adds the task-size flags (``TASK_SIZES``; each None unless given) as one group of ``parser``."""
    group = parser.add_argument_group("task sizes (each overrides the task's, a run's and the scale's)")
    for name in TASK_SIZES:
        add(group, "--" + name.replace("_", "-"), note=data_dir_note if name == "data_dir" else "")


def given_sizes(args) -> dict:
    """The task-size flags given on the command line: {Task field: value}."""
    return {k: getattr(args, k) for k in TASK_SIZES if getattr(args, k, None) is not None}


def carried(run_task: Optional[tasks.Task], same_dataset: bool = False) -> dict:
    """What a run trained on ``run_task`` lends a task it is evaluated on: ``RUN_FIELDS``, and
    ``SAME_DATASET_FIELDS`` too on its own dataset ({} without a run)."""
    if run_task is None:
        return {}
    return {k: getattr(run_task, k) for k in RUN_FIELDS + (SAME_DATASET_FIELDS if same_dataset else ())}


def task_from(name: str, args=None, sizes: Optional[dict] = None, explicit_sizes: Optional[dict] = None,
              run_task: Optional[tasks.Task] = None) -> tasks.Task:
    """Task ``name`` with its sizes from, lowest first: the registry, ``sizes`` (a default scale's), what
    ``run_task`` lends it (``carried``; on the run's dataset, decided by the task so built, its width and
    batch size too), ``explicit_sizes`` (a scale the user named) and the task-size flags given in ``args``."""
    layers = [sizes or {}, carried(run_task), explicit_sizes or {}, given_sizes(args)]
    task = tasks.get(name, **_merged(layers))
    if run_task is not None and task.dataset == run_task.dataset:
        layers[1] = carried(run_task, same_dataset=True)
        task = tasks.get(name, **_merged(layers))
    if run_task is not None and task.weight_decay_mode != run_task.weight_decay_mode:
        warnings.warn(f"the run was trained with weight_decay_mode={run_task.weight_decay_mode!r} but {name} is "
                      f"evaluated with {task.weight_decay_mode!r} (a --scale or --weight-decay-mode given): its "
                      f"policy never saw that decay; pass --weight-decay-mode {run_task.weight_decay_mode} to match",
                      stacklevel=2)
    return task


def _merged(layers: list) -> dict:
    return {k: v for layer in layers for k, v in layer.items()}


def scale_sizes(name: Optional[str]) -> dict:
    """The task sizes of the GANNO scale ``name`` ({} for None)."""
    return {} if name is None else dict(GANNO_SCALES[name].task)
