"""What a training run logs: ``metrics.csv`` (one row per PPO update), ``schedules.csv`` (paper Fig. 1) and
``warm_start.json`` (how well a warm-started policy imitates its schedules).

``RunLog`` turns each chunk of updates' host metrics into rows, keeps every row of the run (read back up to
the last checkpoint when a run resumes, typed as they were written, so a resumed run rewrites its earlier
rows exactly) and rewrites both files atomically after every chunk.

Members (``RunConfig.members = M`` policies trained at once as one vmap): the columns of ``METRIC_FIELDS``
are means over the members (``env_steps`` counts one member's steps, as ``total_timesteps`` does;
``env_steps_per_s`` all members' together), and for ``M > 1`` every column ``<field>`` of ``MEMBER_FIELDS``
is repeated as ``<field>_m<i>`` for member ``i`` (folders written before the rename have ``_a<i>``; they are
read back under the new name). ``episodes`` counts the episodes env copy 0 of member 0 has finished.

A family of tasks: the ``METRIC_FIELDS`` columns pool every task's env copies, and each task adds
``<field>@<task>`` columns of ``GROUP_FIELDS`` (means over the members). ``episodes`` and the schedules
follow env copy 0 of the first task.

Schedules: for each episode ``k`` in ``log_episodes`` (the k-th episode of env copy 0 of member 0, counted
from 0 across updates and chunks) ``schedules.csv`` gets one row per env step with ``SCHEDULE_FIELDS``
(``update``: the PPO update that collected the step; ``step``: env step in the episode, 1..horizon;
``opt_step`` = ``step * tau``) then ``lr_<i>`` per layer ``i`` (and ``wd_<i>`` with weight-decay control),
``train_loss`` and ``val_acc`` measured after the step.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Optional, Sequence

import numpy as np

from ganno_jax.files import write_atomic

#: Per-member columns of metrics.csv (means over the members; ``<field>_m<i>`` per member when several).
MEMBER_FIELDS = ("mean_reward", "val_acc", "final_val_acc", "diverged_frac", "loss_total", "loss_value",
                 "loss_actor", "entropy", "approx_kl")
METRIC_FIELDS = ("update", "env_steps", "episodes", *MEMBER_FIELDS, "env_steps_per_s")
#: Per-task columns of a family's metrics.csv: ``<field>@<task>``.
GROUP_FIELDS = ("mean_reward", "val_acc", "final_val_acc", "diverged_frac")
COUNT_FIELDS = ("update", "env_steps", "episodes")  # integer columns of metrics.csv
SCHEDULE_FIELDS = ("update", "episode", "step", "opt_step")  # integer columns of schedules.csv, then lr_<i>, ...
METRICS_CSV, SCHEDULES_CSV, WARM_START_JSON = "metrics.csv", "schedules.csv", "warm_start.json"
_STEP_KEYS = ("reward", "val_acc", "done", "diverged")  # per-step metrics the columns are computed from
_OLD_MEMBER_COLUMN = re.compile(r"^(.*)_a(\d+)$")  # ``<field>_a<i>``: a member's column before the rename


def metric_fields(members: int, task_names: Sequence[str] = ()) -> tuple:
    """Columns of metrics.csv for a run of ``members`` policies on ``task_names`` (per-task columns only for
    several tasks)."""
    per_member = [f"{f}_m{i}" for i in range(members) for f in MEMBER_FIELDS] if members > 1 else []
    per_task = [f"{f}@{name}" for name in task_names for f in GROUP_FIELDS] if len(task_names) > 1 else []
    return (*METRIC_FIELDS, *per_member, *per_task)


def _member_stats(m: dict, u: int) -> dict:
    """Per-member statistics of update ``u``: field -> ``[M]`` (``m``: metrics with leading axes [M, U])."""
    done = m["done"][:, u].astype(bool)  # [M, T, E]
    finals = [acc[d] for acc, d in zip(m["val_acc"][:, u], done)]
    return {"mean_reward": m["reward"][:, u].mean((1, 2)), "val_acc": m["val_acc"][:, u].mean((1, 2)),
            "final_val_acc": np.array([f.mean() if f.size else np.nan for f in finals]),
            "diverged_frac": m["diverged"][:, u].mean((1, 2)),
            **{f"loss_{k}": m["loss"][k][:, u] for k in ("total", "value", "actor")},
            "entropy": m["loss"]["entropy"][:, u], "approx_kl": m["loss"]["approx_kl"][:, u]}


def _pooled(groups: Sequence[dict], loss: dict) -> dict:
    """The per-step metrics ``_member_stats`` reads, every group's env copies side by side ([M, U, T, sum E])."""
    return {**{k: np.concatenate([g[k] for g in groups], axis=3) for k in _STEP_KEYS}, "loss": loss}


def metric_rows(groups: Sequence[dict], loss: dict, names: Sequence[str], first_update: int, episodes: np.ndarray,
                num_steps: int, num_envs: int, seconds: float) -> list[dict]:
    """One dict per update from a chunk's host metrics: ``groups`` one dict per task ``names`` (leading axes
    [M members, U updates]), ``loss`` (leaves [M, U]); ``episodes [U]``: episodes env copy 0 of member 0 of the
    first task has finished after each update; ``num_steps`` x ``num_envs`` env steps per update and group."""
    m = _pooled(groups, loss)
    members, n = m["reward"].shape[:2]
    rows = []
    for u in range(n):
        stats = _member_stats(m, u)
        finals = m["val_acc"][:, u][m["done"][:, u].astype(bool)]
        row = {"update": first_update + u + 1, "env_steps": (first_update + u + 1) * num_steps * num_envs,
               "episodes": int(episodes[u]), **{f: float(v.mean()) for f, v in stats.items()},
               "final_val_acc": float(finals.mean()) if finals.size else float("nan"),
               "env_steps_per_s": members * len(groups) * n * num_steps * num_envs / max(seconds, 1e-9)}
        if members > 1:
            row.update({f"{f}_m{i}": float(v[i]) for f, v in stats.items() for i in range(members)})
        if len(groups) > 1:
            for name, g in zip(names, groups):
                group_stats = _member_stats(_pooled([g], loss), u)
                row.update({f"{f}@{name}": float(np.mean(group_stats[f])) for f in GROUP_FIELDS})
        rows.append(row)
    return rows


def schedule_rows(m: dict, first_update: int, episodes_before: int, log_episodes: Sequence[int],
                  tau: int, control_wd: bool = False) -> tuple[list[dict], np.ndarray]:
    """(schedules.csv rows, episodes finished after each update ``[U]``) of env copy 0 of member 0 in a
    chunk's host metrics ``m`` (leading axes [M, U, T, E]); ``episodes_before`` finished before it;
    ``control_wd``: add each layer's weight decay."""
    done = m["done"][0, :, :, 0].astype(bool)  # [U, T]
    ended = episodes_before + np.cumsum(done.reshape(-1)).reshape(done.shape)  # finished after each step
    episode = ended - done  # episode index each step belongs to
    rows = []
    for u, t in zip(*np.nonzero(np.isin(episode, log_episodes))):
        step = int(m["step"][0, u, t, 0])
        rows.append({"update": first_update + u + 1, "episode": int(episode[u, t]), "step": step,
                     "opt_step": step * tau,
                     **{f"lr_{i}": float(lr) for i, lr in enumerate(m["lrs"][0, u, t, 0])},
                     **({f"wd_{i}": float(wd) for i, wd in enumerate(m["wds"][0, u, t, 0])} if control_wd else {}),
                     "train_loss": float(m["train_loss"][0, u, t, 0]), "val_acc": float(m["val_acc"][0, u, t, 0])})
    return rows, ended[:, -1]


def _current_name(column: str) -> str:
    """A column's name today: ``<field>_a<i>`` (a member's column before the rename) -> ``<field>_m<i>``."""
    old = _OLD_MEMBER_COLUMN.match(column)
    return f"{old[1]}_m{old[2]}" if old and old[1] in MEMBER_FIELDS else column


def read_rows(path: str, upto: float, counts: Sequence[str] = COUNT_FIELDS) -> list[dict]:
    """Rows of a CSV file written from ``csv_text`` up to update ``upto``, typed as they were written
    (``counts`` columns as ``int``, the others ``float``; old member columns renamed)."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        rows = [{_current_name(k): int(v) if k in counts else float(v) for k, v in r.items()}
                for r in csv.DictReader(f)]
    return [r for r in rows if r["update"] <= upto]


def csv_text(rows: list[dict], fields: Sequence[str]) -> str:
    """``rows`` as CSV text under the header ``fields`` (what ``read_rows`` reads back)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class RunLog:
    """The metrics and schedule rows of the run in ``out_dir`` (``config``: its ``runs.RunConfig``), read back up
    to ``done_updates`` (the last checkpoint) and extended by ``add`` after every checkpoint interval;
    ``warm_start``: the report of a warm start that has just run (``runs.warm_started``), written to
    ``warm_start.json`` with the first checkpoint's rows (every file a checkpoint's rows belong to is written
    at that checkpoint, so a run killed before it starts again from the same state and files)."""

    def __init__(self, out_dir: str, config, done_updates: int, warm_start: Optional[dict] = None):
        self.config = config
        self.names = [t.name for t in config.all_tasks]
        self.metrics_path = os.path.join(out_dir, METRICS_CSV)
        self.schedules_path = os.path.join(out_dir, SCHEDULES_CSV)
        self.rows = read_rows(self.metrics_path, done_updates)
        self.schedule_rows = read_rows(self.schedules_path, done_updates, SCHEDULE_FIELDS)
        for row in self.rows:  # folders written before the column: every episode lasts the (fixed) horizon
            row.setdefault("episodes", row["update"] * config.ippo.num_steps // config.task.horizon)
        self.episodes = self.rows[-1]["episodes"] if self.rows else 0
        self.pending = {} if warm_start is None else {os.path.join(out_dir, WARM_START_JSON):
                                                      json.dumps(warm_start, indent=2)}

    def add(self, metrics: dict, done_updates: int, seconds: float) -> list[dict]:
        """Adds the rows of one chunk's host ``metrics`` (leading axes [M members, U updates]) collected after
        ``done_updates`` updates in ``seconds``, rewrites both files; returns the chunk's metrics rows (one per
        update, as written to metrics.csv)."""
        config = self.config
        loss = metrics.pop("loss")
        groups = metrics["groups"] if config.tasks else (metrics,)
        new_schedule, ended = schedule_rows(groups[0], done_updates, self.episodes, config.log_episodes,
                                            config.task.tau, config.env_params.control_wd)
        new_rows = metric_rows(groups, loss, self.names, done_updates, ended, config.ippo.num_steps,
                               config.ippo.num_envs, seconds)
        self.rows += new_rows
        self.schedule_rows += new_schedule
        self.episodes = int(ended[-1])
        files = {**self.pending, self.metrics_path: csv_text(self.rows, metric_fields(config.members, self.names))}
        if self.schedule_rows:
            files[self.schedules_path] = csv_text(self.schedule_rows, tuple(self.schedule_rows[0]))
        for path, text in files.items():
            write_atomic(path, text)
        self.pending = {}
        return new_rows


def final_metrics(run_dir: str) -> dict:
    """Last row of a run's metrics.csv (empty dict if none)."""
    rows = read_rows(os.path.join(run_dir, METRICS_CSV), np.inf)
    return rows[-1] if rows else {}
