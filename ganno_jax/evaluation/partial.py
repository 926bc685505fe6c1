"""Evaluation that survives a kill: the finished chunks of a grid's runs, kept in a folder (``PartialGrid``).

The folder (``<out>/partial`` of ``ganno evaluate``) holds ``grid.json``, the grid's description
(``describe_grid``: task, controllers, initial LRs, seeds, seed, weight decay, test cadence; a policy by a
digest of its parameters), and one ``<program>-<chunk>.npz`` per finished chunk of runs of a program
(``chunked.RunMapper``): the chunk's outputs as the program returned them (padding included) and the chunk's size.
Every file is written atomically (``files.write_atomic``): a kill leaves whole files only (and at most a
``.tmp-*`` file, never read).

A fresh grid (``resume=False``) replaces whatever the folder holds at its first save, so a grid refused before
any run leaves the folder as it was. With ``resume`` a ``grid.json`` found there must equal this grid's (else a
``ValueError`` naming what differs), and each chunk found there is loaded instead of run when its size and output
shapes are this run's. The stored chunks' size is reused (``ProgramChunks.chunk``), so a resumed grid runs the
programs the killed one ran and ends bit-identical to an uninterrupted run. With several processes a chunk is
loaded only where every process finds it (``distributed.agree_min``), so all of them run the same chunks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
from typing import Optional, Sequence

import jax
import numpy as np

from ganno_jax import distributed
from ganno_jax.evaluation.controllers import PolicyController
from ganno_jax.files import write_atomic

#: The grid's description in a partial folder.
GRID_FILE = "grid.json"


def _digest(tree) -> str:
    """SHA-256 of a pytree's structure (static fields included, memory addresses dropped) and leaf bytes."""
    h = hashlib.sha256(re.sub(r" at 0x[0-9a-f]+", "", str(jax.tree.structure(tree))).encode())
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def _controller(c) -> dict:
    """What decides a controller's runs: its fields; a policy's parameters by their digest and its EnvParams
    field by field (``data`` aside)."""
    fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    if isinstance(c, PolicyController):
        env = c.env_params
        fields.update(policy=_digest(c.policy),
                      env_params={f.name: getattr(env, f.name) for f in dataclasses.fields(env) if f.name != "data"})
    return fields


def describe_grid(controllers: Sequence, task, init_lrs: Sequence[float], seeds: int, seed: int, weight_decay: float,
                  test_every: int) -> dict:
    """JSON-ready description of an evaluation grid: everything its results depend on (beyond float round-off)."""
    grid = {"task": dataclasses.asdict(task), "controllers": [_controller(c) for c in controllers],
            "init_lrs": [float(lr) for lr in init_lrs], "seeds": int(seeds), "seed": int(seed),
            "weight_decay": float(weight_decay), "test_every": int(test_every)}
    return json.loads(json.dumps(grid, default=str))


def file_stem(method: str) -> str:
    """A method name as a file-name part: runs of characters other than letters, digits, ``.-_`` become
    one ``_`` (``"GANNO (sample)"`` -> ``"GANNO_sample"``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", method).strip("_")


class PartialGrid:
    """The finished chunks of the grid ``description`` in ``folder`` (see the module docstring); ``loaded``
    counts the chunks read back instead of run."""

    def __init__(self, folder: str, description: dict, resume: bool = False):
        self.folder, self.description, self.resume, self.loaded = folder, description, resume, 0
        stored = self._stored() if resume else None
        if stored is not None and stored != description:
            differ = sorted(k for k in {*stored, *description} if stored.get(k) != description.get(k))
            raise ValueError(f"--resume: {folder!r} holds another evaluation grid ({', '.join(differ)} differ from "
                             f"this command's); repeat the command that started it, or pass --overwrite instead")
        self.started = stored is not None  # the folder holds this grid: saves add to it

    def _stored(self) -> Optional[dict]:
        path = os.path.join(self.folder, GRID_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def program(self, name: str) -> "ProgramChunks":
        """The chunks of the program ``name`` (a file-name part, unique within the grid)."""
        return ProgramChunks(self, name)

    def start(self) -> None:
        """Before the first chunk is saved: a fresh grid empties the folder and writes ``grid.json``."""
        if not self.started and distributed.is_writer():
            shutil.rmtree(self.folder, ignore_errors=True)
            write_atomic(os.path.join(self.folder, GRID_FILE), json.dumps(self.description, indent=1))
        self.started = True



def remove(folder: str) -> None:
    """Deletes a partial folder (its grid's results are written): process 0 only."""
    if distributed.is_writer():
        shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass
class ProgramChunks:
    """One program's chunks in a ``PartialGrid``: what ``chunked.RunMapper`` takes as its ``store``."""

    grid: PartialGrid
    name: str

    def _path(self, index: int) -> str:
        return os.path.join(self.grid.folder, f"{self.name}-{index:04d}.npz")

    def _found(self, index: int) -> bool:
        """Chunk ``index`` is on disk in every process (always False for a fresh grid)."""
        found = self.grid.resume and self.grid.started and os.path.exists(self._path(index))
        return bool(distributed.agree_min(int(found)))

    @property
    def chunk(self) -> Optional[int]:
        """Runs per chunk of the stored chunks (None: none stored)."""
        if not self._found(0):
            return None
        with np.load(self._path(0)) as f:
            return distributed.agree_min(int(f["chunk"]))

    def load(self, index: int, chunk: int, like):
        """Outputs of chunk ``index`` if it is stored with ``chunk`` runs and the shapes and dtypes of ``like``
        (a pytree of ``jax.ShapeDtypeStruct``, e.g. ``compiled.out_info``); else None."""
        if not self._found(index):
            return None
        specs, treedef = jax.tree.flatten(like)
        with np.load(self._path(index)) as f:
            if int(f["chunk"]) != chunk or len(f.files) != len(specs) + 1:
                return None
            leaves = [f[f"leaf{i}"] for i in range(len(specs))]
        if any(x.shape != s.shape or x.dtype != s.dtype for x, s in zip(leaves, specs)):
            return None
        self.grid.loaded += 1
        return jax.tree.unflatten(treedef, leaves)

    def save(self, index: int, chunk: int, outputs) -> None:
        """Writes chunk ``index`` (``chunk`` runs; ``outputs``: NumPy arrays) atomically."""
        self.grid.start()
        buffer = io.BytesIO()
        np.savez(buffer, chunk=np.int64(chunk), **{f"leaf{i}": x for i, x in enumerate(jax.tree.leaves(outputs))})
        write_atomic(self._path(index), buffer.getvalue())
