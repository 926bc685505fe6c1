"""``ganno train --log tensorboard,wandb`` and ``ganno evaluate --log ...`` (``ganno_jax.tracking``): the event
files hold metrics.csv's values at step = PPO update, a resumed run appends without repeating a step, W&B runs
offline (no network) inside the run folder, and a missing extra is refused in one line before anything is
written. Event files are read back with their own formats: TensorBoard's TFRecords (tensorboardX's protos)
and W&B's record log (wandb's protos)."""
from __future__ import annotations

import csv
import json
import os
import struct
import sys

import numpy as np
import pytest

from ganno_jax import cli, tracking

TASK = ["--task", "digits-mlp", "--tau", "3", "--horizon", "4", "--batch-size", "16", "--width", "2"]
SMALL = ["--num-envs", "2", "--num-steps", "8", "--total-timesteps", "48", "--update-epochs", "1",  # 3 updates
         "--num-minibatches", "1", "--actor-layers", "8", "--gru-size", "4", "--actor-post-gru", "4",
         "--critic-layers", "8", "--checkpoint-every", "1"]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline and silent, its own folders (cache, config, data) inside ``tmp_path``."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / var.lower()))


def tensorboard_scalars(folder) -> dict:
    """{(tag, step): [values]} of every event file in ``folder`` (records: length u64, crc u32, Event, crc u32)."""
    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for name in sorted(os.listdir(folder)):
        data, pos = open(os.path.join(folder, name), "rb").read(), 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 16 + n
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    out.setdefault((v.tag, event.step), []).append(v.simple_value)
    return out


def wandb_records(path):
    """The ``Record`` protos of a W&B run file ``run-<id>.wandb`` (a 7-byte header, then a LevelDB-style log:
    32 KiB blocks of chunks with a 7-byte header crc u32, length u16, kind u8; kinds 1 full, 2-4 first/middle/last)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block = open(path, "rb").read(), 32768
    assert data[:4] == b":W&B"
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        parts, pos = parts + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            yield Record.FromString(parts)
            parts = b""


def wandb_items(run_dir: str, kind: str) -> list[dict]:
    """The ``kind`` ("history" or "summary") records of every offline run under ``run_dir/wandb`` (oldest
    first), each as {key: value}."""
    out = []
    for d in sorted(d for d in os.listdir(os.path.join(run_dir, "wandb")) if d.startswith("offline-run-")):
        folder = os.path.join(run_dir, "wandb", d)
        (name,) = [f for f in os.listdir(folder) if f.endswith(".wandb")]
        for r in wandb_records(os.path.join(folder, name)):
            if r.WhichOneof("record_type") == kind:
                items = r.history.item if kind == "history" else r.summary.update
                out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return out


def test_train_streams_metrics_csv_to_tensorboard_and_wandb_and_resume_appends(tmp_path, offline):
    run = str(tmp_path / "run")
    assert cli.main(["train", *TASK, *SMALL, "--log", "tensorboard", "--log", "wandb", "--max-checkpoints", "2",
                     "--out", run, "--seed", "1"]) == 0
    assert cli.main(["train", "--resume", run]) == 0  # continues both trackers unasked
    rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    assert [int(r["update"]) for r in rows] == [1, 2, 3]
    columns = [c for c in rows[0] if c != "update"]

    scalars = tensorboard_scalars(os.path.join(run, "tensorboard"))
    assert {step for _, step in scalars} == {1, 2, 3} and len(os.listdir(os.path.join(run, "tensorboard"))) == 2
    for r in rows:
        for c in columns:
            (value,) = scalars[(f"train/{c}", int(r["update"]))]  # once: the resumed run repeats no step
            np.testing.assert_equal(value, np.float32(r[c]))

    run_id = open(os.path.join(run, "wandb", tracking.WANDB_ID)).read()
    runs = sorted(d for d in os.listdir(os.path.join(run, "wandb")) if d.startswith("offline-run-"))
    assert len(runs) == 2 and all(d.endswith("-" + run_id) for d in runs)  # one W&B run, resumed
    history = wandb_items(run, "history")
    assert [h["_step"] for h in history] == [1, 2, 3]
    for h, r in zip(history, rows):
        np.testing.assert_equal([h[f"train/{c}"] for c in columns], [float(r[c]) for c in columns])
    assert not os.path.exists(tmp_path / "wandb_home" / "wandb_dir")  # W&B wrote its run in the run folder


def test_evaluate_logs_its_table_as_summary_scalars(tmp_path, offline):
    out = str(tmp_path / "res")
    assert cli.main(["evaluate", *TASK, "--methods", "constant", "--init-lrs", "1e-3,1e-2", "--seeds", "1",
                     "--no-progress", "--log", "tensorboard,wandb", "--out", out]) == 0
    expected = tracking.summary_scalars(json.load(open(os.path.join(out, "results.json")))["summary"])
    assert {"eval/constant/acc_mean_lr_0.01", "eval/constant/acc_avg_mean"} <= set(expected)
    scalars = tensorboard_scalars(os.path.join(out, "tensorboard"))
    assert {k: v for (k, _), (v,) in scalars.items()} == {k: np.float32(v) for k, v in expected.items()}
    summary = {k: v for s in wandb_items(out, "summary") for k, v in s.items() if k.startswith("eval/")}
    assert summary == expected


@pytest.mark.parametrize("command", [["train", *TASK, *SMALL], ["evaluate", *TASK, "--methods", "constant"]])
@pytest.mark.parametrize("log,blocked,message", [
    ("wandb", "wandb", "--log wandb needs the wandb package: pip install 'ganno_jax[tracking]'"),
    ("tensorboard", "tensorboardX", "--log tensorboard needs the tensorboardX package: pip install "
                                    "'ganno_jax[tracking]'"),
    ("tensorboard,mlflow", None, "--log='mlflow' is not valid; allowed: tensorboard, wandb"),
])
def test_a_missing_extra_or_unknown_tracker_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, command,
                                                                          log, blocked, message):
    if blocked:
        monkeypatch.setitem(sys.modules, blocked, None)  # Python's way to make a package unimportable
    out = tmp_path / "R"
    assert cli.main([*command, "--log", log, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"ganno {command[0]}: error: {message}\n"
    assert not out.exists()
