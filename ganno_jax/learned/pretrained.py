"""Pretrained GANNO controllers by name, shipped inside the package (``controllers/<name>/``).

Each controller is two small files written by ``export`` from a trained run folder: ``policy.msgpack`` (the
actor-critic parameters and observation statistics, ``flax.serialization``) and ``controller.json`` (the run's
whole ``config.json``: task, IPPO config, ``EnvParams``, variant; plus the exact command that trained it, the
git commit and whether the tree was dirty, and the run's last metrics row). ``pretrained(name)`` rebuilds a
``Controller``: the policy and everything ``schedule`` needs (action set and observation mask through
``env_params``, LR/WD bounds, the tau and horizon it was trained at, the IPPO network config).

Shipped (every one at the cpu scale, ``scales.GANNO_SCALES["cpu"]``: tau 5, horizon 40, the wide action set,
width 8, batch 32; each ``controller.json`` holds its exact command):

- ``family-cpu`` (``RECOMMENDED``): one policy trained on the ``small`` family (digits and mnist1d x MLP / CNN-2 /
  CNN-3; ``experiments/pretrain.py``, 800 PPO updates); never trained on the held-out tasks
  (``tasks.families.HELD_OUT``).
- ``demo-digits-cnn2``: the demo's controller (digits-cnn2, 160 PPO updates).
- ``digits-cnn2-prodigy``, ``digits-cnn2-schedule_free_adamw``: GANNO over Prodigy / schedule-free AdamW (trained
  with ``--optimizer``; a layer's LR is a multiplier on Prodigy's step / the step size of its AdamW step on z),
  demo budget.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import pathlib
import subprocess
from typing import Optional

import flax.serialization
import jax
import jax.numpy as jnp

from ganno_jax.agents import LearnedPolicy, RunningMeanStd
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.files import write_atomic
from ganno_jax.run_log import final_metrics
from ganno_jax.runs import CONFIG, RunConfig, load_policy

#: The controller ``pretrained()`` loads when given no name.
RECOMMENDED = "family-cpu"
CONTROLLERS = importlib.resources.files("ganno_jax.learned") / "controllers"
POLICY_FILE, META_FILE = "policy.msgpack", "controller.json"


@dataclasses.dataclass(frozen=True)
class Controller:
    """A trained policy with what it was trained under; ``learned.schedule(optimizer, controller)`` uses its
    ``tau``, ``horizon`` and ``env_params`` (observation mask, ``lr_min`` / ``lr_max``, ``control_wd``) unless
    overridden. ``provenance``: the ``controller.json`` it came from (command, commit, config, metrics)."""

    name: str
    policy: LearnedPolicy
    env_params: EnvParams
    variant: str
    tau: int
    horizon: int
    provenance: dict

    @property
    def task(self):
        """The ``Task`` it was trained on (its sizes carry over to evaluation, as a run folder's do)."""
        return RunConfig.from_dict(self.provenance["config"]).task


def pretrained_names() -> list[str]:
    """Names of the controllers shipped with the package, sorted."""
    if not CONTROLLERS.is_dir():
        return []
    return sorted(entry.name for entry in CONTROLLERS.iterdir() if (entry / META_FILE).is_file())


def pretrained(name: Optional[str] = None, *, greedy: bool = True) -> Controller:
    """The shipped controller ``name`` (default ``RECOMMENDED``), or the one exported into the folder ``name``
    (``export(..., folder=...)``; e.g. ``experiments/pretrain.py``'s), acting greedily or sampling its actions
    (``greedy=False``; the key lives in ``schedule``'s state). ``ValueError`` naming the valid names."""
    name = RECOMMENDED if name is None else name
    if name in pretrained_names():
        folder = CONTROLLERS / name
    elif os.path.isfile(os.path.join(name, META_FILE)):
        folder = pathlib.Path(name)
    else:
        raise ValueError(f"no pretrained controller {name!r}; available: {', '.join(pretrained_names())}, or the "
                         f"folder of an exported one (holding {META_FILE} and {POLICY_FILE})")
    meta = json.loads((folder / META_FILE).read_text())
    name = meta.get("name", name)
    config = RunConfig.from_dict(meta["config"])
    stored = flax.serialization.msgpack_restore((folder / POLICY_FILE).read_bytes())
    policy = LearnedPolicy(params=jax.tree.map(jnp.asarray, stored["params"]),
                           obs_stats=RunningMeanStd(**jax.tree.map(jnp.asarray, stored["obs_stats"])),
                           cfg=config.ippo, greedy=greedy)
    return Controller(name, policy, config.env_params, config.variant, config.task.tau, config.task.horizon, meta)


def _git(*args: str) -> str:
    """Output of a read-only git command in this package's checkout ('' outside one)."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def export(run_dir: str, name: str, command: str, folder: Optional[str] = None, member: int = 0) -> str:
    """Writes a trained run folder's policy as controller ``name`` into ``folder`` (default: this package's
    ``controllers/``); ``command``: the exact command that trained the run; ``member``: which policy of a run
    trained with ``members > 1``. Returns the controller's folder."""
    policy, config = load_policy(run_dir)
    if config.members > 1:
        policy = policy.replace(params=jax.tree.map(lambda x: x[member], policy.params),
                                obs_stats=jax.tree.map(lambda x: x[member], policy.obs_stats))
    out = os.path.join(str(CONTROLLERS) if folder is None else folder, name)
    os.makedirs(out, exist_ok=True)
    blob = flax.serialization.msgpack_serialize(jax.tree.map(
        lambda x: jax.device_get(x), {"params": flax.serialization.to_state_dict(policy.params),
                                      "obs_stats": flax.serialization.to_state_dict(policy.obs_stats)}))
    with open(os.path.join(out, POLICY_FILE), "wb") as f:
        f.write(blob)
    with open(os.path.join(run_dir, CONFIG)) as f:
        run_config = json.load(f)
    meta = {"name": name, "command": command, "commit": _git("rev-parse", "HEAD"),
            "dirty_tree": bool(_git("status", "--porcelain")), "member": member, "config": run_config,
            "final_metrics": final_metrics(run_dir)}
    write_atomic(os.path.join(out, META_FILE), json.dumps(meta, indent=2))
    return out
