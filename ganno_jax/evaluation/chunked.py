"""One per-run program over many runs, in chunks that fit memory, split over devices.

An evaluation grid (methods x initial LRs x seeds) is a flat axis of ``R`` runs, each the same pure
function ``fn(shared, run)`` of inputs shared by all runs (the dataset, policy parameters, weight
decay) and inputs of its own (initial LR, PRNG key, schedule index). Both are arguments of the
compiled programs: anything large that ``fn`` closed over instead (a dataset) would be embedded in
every compiled program as a constant, one copy per cached program. ``RunMapper`` vmaps ``fn`` over chunks of
``C`` runs, compiles one program per chunk size (cached) and calls it ``ceil(R / C)`` times; the last
chunk is padded by repeating the last run, never compiled again. Each run's result depends only on
its own inputs, so chunking changes nothing but the memory held at once (and float round-off where
XLA batches a matmul differently).

Choosing ``C`` (``RunMapper.plan``):
- start from ``max_parallel_runs`` when given (the user's override, honoured), else from all runs,
  capped on CPU at ``CPU_RUNS_PER_DEVICE`` runs per device (``first_chunk``): one XLA:CPU device runs
  on about one core, which a real-size run already keeps busy, so a wider vmap only costs memory;
  accelerators have no cap;
- compile, read the program's footprint from ``compiled.memory_analysis()`` (arguments + outputs +
  temporaries, per device) and compare it with the device's budget (``budget_from_free``):
  ``MEMORY_FRACTION`` of its free memory (accelerators: ``memory_stats``; CPU: the available RAM,
  cgroup limits included, shared by all CPU devices of the mesh);
- if it does not fit, size ``C`` from the footprint (``fitting_chunk``: the shared inputs, e.g. the
  dataset, counted once, the rest per run) and compile again; if one run per device does not fit,
  raise ``InsufficientMemoryError`` naming the estimate, the budget and the knobs that help — before
  any run starts. An out-of-memory error from XLA while running becomes the same error.

With a mesh (``grid_mesh``), ``C`` is a multiple of its device count and each chunk is split over the
devices along the run axis (``NamedSharding``); shared inputs are replicated (one copy per device:
``device_put`` reuses a buffer already on a device).

A ``store`` (``evaluation.partial.ProgramChunks``) keeps each finished chunk's outputs as it completes and gives
back those of an earlier, killed call: their chunk size is reused (``C`` is then the stored one), and a chunk it
holds is read instead of run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ganno_jax import distributed
from ganno_jax.agents.sharding import ENV_AXIS, env_mesh
from ganno_jax.checks import check_int

#: fraction of a device's free memory one chunk's program may use
MEMORY_FRACTION = 0.7
#: default cap of parallel runs per CPU device (wider vmaps only cost memory on XLA:CPU)
CPU_RUNS_PER_DEVICE = 8
GIB = float(1 << 30)


class InsufficientMemoryError(MemoryError):
    """A program cannot fit the memory available to it (raised before it runs)."""


@dataclass(frozen=True)
class ChunkPlan:
    """How a grid of runs is executed: ``chunk`` runs per call over ``devices`` devices;
    ``program_bytes`` / ``budget_bytes``: the compiled chunk's footprint and the budget, per device
    (None where the backend reports none)."""

    chunk: int
    devices: int
    program_bytes: Optional[int]
    budget_bytes: Optional[int]

    def describe(self) -> str:
        """One line, e.g. ``"16 runs at once on 2 devices, ~1.2 of 8.1 GiB per device"``."""
        text = f"{self.chunk} runs at once on {self.devices} device{'s' if self.devices > 1 else ''}"
        if self.program_bytes is not None and self.budget_bytes is not None:
            text += f", ~{self.program_bytes / GIB:.2f} of {self.budget_bytes / GIB:.1f} GiB per device"
        return text


def _available_ram() -> Optional[int]:
    """Available host RAM in bytes: MemAvailable, lowered by a cgroup (v2 or v1) memory limit."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None and hasattr(os, "sysconf"):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = (open(p).read().strip() for p in (limit_file, usage_file))
        except OSError:
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            available = min(available, int(limit) - int(usage)) if available is not None else int(limit) - int(usage)
    return available


def free_memory(device) -> Optional[int]:
    """Free memory of ``device`` in bytes (CPU: the host's available RAM); None if unknown."""
    if device.platform == "cpu":
        return _available_ram()
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return None


def _mesh_devices(mesh: Optional[Mesh]) -> list:
    """Devices a program runs on: the mesh's, or the default device without a mesh."""
    return list(mesh.devices.flat) if mesh is not None else [jax.devices()[0]]


def grid_mesh(devices: Optional[int] = None) -> Optional[Mesh]:
    """Mesh a grid of runs is split over: the first ``devices`` devices (None: all); None for one device."""
    mesh = env_mesh(devices)
    return mesh if mesh.size > 1 else None


def budget_from_free(free: Sequence[Optional[int]], on_cpu: bool) -> Optional[int]:
    """Bytes one device's share of a program may use, given the free bytes of each of the mesh's
    devices: ``MEMORY_FRACTION`` of the least free; CPU devices share the host's RAM, so on CPU it is
    divided among them. None if some device's free memory is unknown."""
    if not free or any(f is None for f in free):
        return None
    share = min(free) * MEMORY_FRACTION
    return int(share / len(free) if on_cpu else share)


def device_budget(mesh: Optional[Mesh]) -> Optional[int]:
    """``budget_from_free`` of this process's devices of the mesh (the default device without a mesh);
    with several processes the least of theirs, so that all choose the same chunks."""
    devices = [d for d in _mesh_devices(mesh) if d.process_index == jax.process_index()]
    return distributed.agree_min(budget_from_free([free_memory(d) for d in devices], devices[0].platform == "cpu"))


def first_chunk(num_runs: int, devices: int, on_cpu: bool, max_parallel_runs: Optional[int] = None) -> int:
    """Runs of the first program compiled: ``max_parallel_runs`` if given, else all ``num_runs``
    (on CPU at most ``CPU_RUNS_PER_DEVICE`` per device), rounded up to a multiple of ``devices``."""
    cap = max_parallel_runs
    if cap is None:
        cap = min(num_runs, CPU_RUNS_PER_DEVICE * devices) if on_cpu else num_runs
    return -(-min(cap, num_runs) // devices) * devices


def fitting_chunk(chunk: int, devices: int, need: int, shared: int, budget: int) -> int:
    """Runs of the next program to try after one of ``chunk`` runs needed ``need`` bytes per device
    (> ``budget``): ``shared`` bytes (inputs of every run, e.g. the dataset) are counted once, the rest
    divides among the chunk's ``chunk // devices`` runs per device. A multiple of ``devices``, at least
    ``devices`` and below ``chunk``."""
    per_device = chunk // devices
    per_run = max(need - shared, 1) / per_device
    fits = int((budget - shared) // per_run)
    return max(1, min(per_device - 1, fits)) * devices


def tree_bytes(tree) -> int:
    """Bytes of a pytree's array leaves (shape x item size; arrays, tracers or ``ShapeDtypeStruct``)."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def program_bytes(compiled) -> Optional[int]:
    """Footprint of a compiled program per device (arguments + outputs + temporaries - aliased)."""
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, jax.errors.JaxRuntimeError):
        return None
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes + stats.generated_code_size_in_bytes)


def _is_oom(err: Exception) -> bool:
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


class RunMapper:
    """``fn(shared, run) -> outputs`` mapped over a leading run axis of ``runs`` in chunks.

    Args:
      fn: pure per-run function; ``run`` is a pytree of one run's inputs (no run axis), ``shared`` the
        inputs of every run — pass anything large (a dataset) here rather than closing over it.
      label: what the runs are, for messages (e.g. ``"digits-cnn3, 9 schedules"``).
      hint: knobs that lower one run's memory, for the out-of-memory message.
    Compiled programs are cached per (chunk, mesh, input shapes), so a second call with other values
    of the same shapes (another policy, weight decay or grid) reuses them.
    """

    def __init__(self, fn: Callable, label: str = "runs", hint: str = ""):
        self._batched = jax.vmap(fn, in_axes=(None, 0))
        self.label = label
        self.hint = hint
        self._compiled: dict = {}

    def lower(self, shared, runs, chunk: int, mesh: Optional[Mesh] = None):
        """``jax.stages.Lowered`` program of ``chunk`` runs; ``shared`` and ``runs`` (leading run axis of
        any size; only shapes are used) are its arguments."""
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct((chunk, *x.shape[1:]), x.dtype), runs)
        if mesh is None:
            jitted = jax.jit(self._batched)
        else:
            split = NamedSharding(mesh, PartitionSpec(ENV_AXIS))
            jitted = jax.jit(self._batched, in_shardings=(NamedSharding(mesh, PartitionSpec()), split),
                             out_shardings=split)
        return jitted.lower(shared, abstract)

    def _compile(self, shared, runs, chunk: int, mesh: Optional[Mesh]):
        leaves, treedef = jax.tree.flatten((shared, runs))
        key = (chunk, mesh, treedef, tuple((x.shape, str(x.dtype)) for x in leaves))
        if key not in self._compiled:
            self._compiled[key] = self.lower(shared, runs, chunk, mesh).compile()
        return self._compiled[key]

    def plan(self, shared, runs, mesh: Optional[Mesh] = None, max_parallel_runs: Optional[int] = None,
             budget_bytes: Optional[int] = None):
        """(``ChunkPlan``, compiled program) for ``runs`` (leading axis R): the largest chunk that fits
        (see the module docstring). ``budget_bytes`` overrides the per-device budget."""
        if max_parallel_runs is not None:
            check_int("max_parallel_runs", max_parallel_runs, note=" (or None: chosen from free memory)")
        num_runs = jax.tree.leaves(runs)[0].shape[0]
        devices = mesh.size if mesh is not None else 1
        budget = device_budget(mesh) if budget_bytes is None else budget_bytes
        on_cpu = _mesh_devices(mesh)[0].platform == "cpu"
        chunk = first_chunk(num_runs, devices, on_cpu, max_parallel_runs)
        while True:
            compiled = self._compile(shared, runs, chunk, mesh)
            need = program_bytes(compiled)
            plan = ChunkPlan(chunk, devices, need, budget)
            if need is None or budget is None or need <= budget or max_parallel_runs is not None:
                return plan, compiled
            if chunk == devices:
                raise InsufficientMemoryError(
                    f"{self.label}: one run needs an estimated {need / GIB:.2f} GiB per device, but only "
                    f"{budget / GIB:.2f} GiB is available to it ({MEMORY_FRACTION:.0%} of the free memory). "
                    f"{self.hint} Or free memory (close other programs), or evaluate on a larger device.")
            chunk = fitting_chunk(chunk, devices, need, tree_bytes(shared), budget)

    def __call__(self, shared, runs, mesh: Optional[Mesh] = None, max_parallel_runs: Optional[int] = None,
                 on_chunk: Optional[Callable[[int], Any]] = None, budget_bytes: Optional[int] = None, store=None):
        """Outputs of every run, stacked on a leading [R] axis as NumPy arrays, and the ``ChunkPlan``.

        Args:
          shared: inputs of every run (replicated over the mesh).
          runs: per-run inputs, leading axis R.
          mesh: 1-D ``"envs"`` mesh to split each chunk over (None: one device).
          max_parallel_runs: runs per call (None: chosen from the memory budget).
          on_chunk: called with the number of real runs after each chunk (progress bars).
          store: keeps finished chunks and gives back stored ones (``partial.ProgramChunks``; module docstring).
        """
        num_runs = jax.tree.leaves(runs)[0].shape[0]
        stored_chunk = None if store is None else store.chunk
        plan, compiled = self.plan(shared, runs, mesh, stored_chunk or max_parallel_runs, budget_bytes)
        padded = -(-num_runs // plan.chunk) * plan.chunk
        order = np.minimum(np.arange(padded), num_runs - 1)
        if mesh is not None:
            shared = distributed.put(shared, NamedSharding(mesh, PartitionSpec()))
        pieces = []
        for index, start in enumerate(range(0, padded, plan.chunk)):
            piece = None if store is None else store.load(index, plan.chunk, compiled.out_info)
            if piece is None:
                chunk_runs = jax.tree.map(lambda x: x[order[start:start + plan.chunk]], runs)
                piece = self._run_chunk(compiled, shared, chunk_runs, mesh, plan)
                if store is not None:
                    store.save(index, plan.chunk, piece)
            pieces.append(piece)
            if on_chunk is not None:
                on_chunk(min(plan.chunk, num_runs - start))
        outputs = jax.tree.map(lambda *xs: np.concatenate(xs)[:num_runs], *pieces)
        return outputs, plan

    def _run_chunk(self, compiled, shared, chunk_runs, mesh: Optional[Mesh], plan: ChunkPlan):
        """Outputs of one chunk's runs as NumPy arrays; XLA's out-of-memory error as ``InsufficientMemoryError``."""
        if mesh is not None:
            chunk_runs = distributed.put(chunk_runs, NamedSharding(mesh, PartitionSpec(ENV_AXIS)))
        try:
            return distributed.to_host(compiled(shared, chunk_runs))
        except jax.errors.JaxRuntimeError as err:
            if not _is_oom(err):
                raise
            raise InsufficientMemoryError(
                f"{self.label}: ran out of memory with {plan.describe()}; pass a smaller "
                f"max_parallel_runs (--max-parallel-runs). {self.hint}") from None
