"""Chunked execution of a grid of runs: chunk sizes from the memory budget, padding, equality with the
all-at-once program, the early out-of-memory error, finished chunks kept on disk and read back, and a grid split
over 4 fake CPU devices."""
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganno_jax.evaluation import chunked, partial


def _outer_run(scale, x):
    """A run whose memory grows with its input: tanh of an outer product [n, n], reduced per row."""
    return {"rows": jnp.tanh(scale * jnp.outer(x, x)).sum(axis=1), "total": jnp.sum(x)}


@pytest.fixture(scope="module")
def mapper():
    return chunked.RunMapper(_outer_run, label="outer-product runs", hint="Lower n.")


RUNS = jnp.asarray(np.random.default_rng(0).normal(size=(7, 384)), jnp.float32)  # 7 runs of n=384


def test_chunks_equal_the_all_at_once_program(mapper):
    whole, plan_whole = mapper(jnp.float32(0.5), RUNS, max_parallel_runs=7)
    parts, plan_parts = mapper(jnp.float32(0.5), RUNS, max_parallel_runs=3)  # 3 + 3 + 1 padded
    assert (plan_whole.chunk, plan_parts.chunk) == (7, 3)
    assert whole["rows"].shape == (7, 384) and parts["total"].shape == (7,)
    np.testing.assert_allclose(parts["rows"], whole["rows"], rtol=1e-6)
    np.testing.assert_allclose(parts["total"], np.asarray(RUNS, np.float64).sum(axis=1), rtol=1e-5, atol=1e-5)
    reference = np.tanh(0.5 * np.einsum("ri,rj->rij", RUNS, RUNS)).sum(axis=2)
    np.testing.assert_allclose(whole["rows"], reference, rtol=1e-4, atol=1e-3)


def test_plan_shrinks_the_chunk_to_the_budget(mapper):
    all_at_once, _ = mapper.plan(jnp.float32(1.0), RUNS, max_parallel_runs=7)
    one, _ = mapper.plan(jnp.float32(1.0), RUNS, max_parallel_runs=1)
    assert all_at_once.program_bytes > 2 * one.program_bytes  # the footprint grows with the chunk
    budget = int(2.5 * one.program_bytes)
    plan, _ = mapper.plan(jnp.float32(1.0), RUNS, budget_bytes=budget)
    assert 1 <= plan.chunk < 7 and plan.program_bytes <= budget
    done = []
    out, used = mapper(jnp.float32(1.0), RUNS, budget_bytes=budget, on_chunk=done.append)
    assert used == plan and sum(done) == 7 and all(n <= plan.chunk for n in done)
    np.testing.assert_allclose(out["rows"], mapper(jnp.float32(1.0), RUNS, max_parallel_runs=7)[0]["rows"],
                               rtol=1e-6)


def test_a_run_that_cannot_fit_is_refused_before_running(mapper):
    one, _ = mapper.plan(jnp.float32(1.0), RUNS, max_parallel_runs=1)
    calls = []
    with pytest.raises(chunked.InsufficientMemoryError) as err:
        mapper(jnp.float32(1.0), RUNS, budget_bytes=one.program_bytes // 2, on_chunk=calls.append)
    text = str(err.value)
    assert "outer-product runs: one run needs an estimated" in text and "Lower n." in text
    assert f"{one.program_bytes / chunked.GIB:.2f} GiB" in text
    assert calls == []  # nothing ran


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_max_parallel_runs_is_checked(mapper, bad):
    with pytest.raises(ValueError, match=f"max_parallel_runs={bad!r} must be an integer >= 1"):
        mapper(jnp.float32(1.0), RUNS, max_parallel_runs=bad)


def test_stored_chunks_are_read_back_instead_of_run(mapper, tmp_path):
    """Each chunk is written as it completes; a resumed call reuses the stored chunk size and reads the chunks
    back (other shared inputs do not change them: they are not run), and runs only the missing one."""
    folder = str(tmp_path / "partial")
    store = partial.PartialGrid(folder, {"g": 1}).program("p")
    out, _ = mapper(jnp.float32(0.5), RUNS, max_parallel_runs=3, store=store)
    assert sorted(os.listdir(folder)) == ["grid.json", "p-0000.npz", "p-0001.npz", "p-0002.npz"]  # 3 + 3 + 1 padded
    os.remove(os.path.join(folder, "p-0002.npz"))  # as if killed while the last chunk ran
    resumed = partial.PartialGrid(folder, {"g": 1}, resume=True)
    done = []
    again, plan = mapper(jnp.float32(2.0), RUNS, store=resumed.program("p"), on_chunk=done.append)
    assert plan.chunk == 3 and resumed.loaded == 2 and done == [3, 3, 1]
    np.testing.assert_array_equal(again["rows"][:6], out["rows"][:6])  # read back, not run at scale 2.0
    ran = mapper(jnp.float32(2.0), RUNS, max_parallel_runs=3)[0]
    np.testing.assert_array_equal(again["rows"][6:], ran["rows"][6:])
    assert os.path.exists(os.path.join(folder, "p-0002.npz"))  # the chunk that ran is kept too
    like = mapper.plan(jnp.float32(2.0), RUNS, max_parallel_runs=4)[1].out_info
    assert partial.PartialGrid(folder, {"g": 1}, resume=True).program("p").load(0, 4, like) is None  # size differs


def test_a_folder_of_another_grid_is_refused_and_a_fresh_grid_replaces_it_at_its_first_save(mapper, tmp_path):
    folder = str(tmp_path / "partial")
    mapper(jnp.float32(0.5), RUNS, max_parallel_runs=7, store=partial.PartialGrid(folder, {"seeds": 2}).program("a"))
    with pytest.raises(ValueError, match=r"holds another evaluation grid \(seeds differ from this command's\)"):
        partial.PartialGrid(folder, {"seeds": 3}, resume=True)
    fresh = partial.PartialGrid(folder, {"seeds": 3})
    assert sorted(os.listdir(folder)) == ["a-0000.npz", "grid.json"]  # nothing changes before a chunk is saved
    mapper(jnp.float32(0.5), RUNS, max_parallel_runs=7, store=fresh.program("b"))
    assert sorted(os.listdir(folder)) == ["b-0000.npz", "grid.json"]
    assert json.load(open(os.path.join(folder, "grid.json"))) == {"seeds": 3}


def test_free_memory_and_budget_are_plausible():
    cpu = jax.devices("cpu")[0]
    free = chunked.free_memory(cpu)
    assert free is not None and 0 < free < 1 << 50
    budget = chunked.device_budget(None)
    assert 0 < budget <= free


def test_budget_is_a_share_of_the_free_memory():
    free = [int(140 * chunked.GIB), int(120 * chunked.GIB)]
    assert chunked.budget_from_free(free, on_cpu=False) == int(0.7 * 120 * chunked.GIB)  # each device its own
    assert chunked.budget_from_free(free, on_cpu=True) == int(0.7 * 120 * chunked.GIB / 2)  # one shared RAM
    assert chunked.budget_from_free([free[0], None], on_cpu=False) is None


def test_first_chunk_caps_cpu_devices_only():
    assert chunked.first_chunk(195, 1, on_cpu=False) == 195  # an accelerator takes the whole grid
    assert chunked.first_chunk(195, 8, on_cpu=False) == 200  # padded to a multiple of the devices
    assert chunked.first_chunk(195, 2, on_cpu=True) == 2 * chunked.CPU_RUNS_PER_DEVICE
    assert chunked.first_chunk(195, 2, on_cpu=True, max_parallel_runs=60) == 60  # the override wins
    assert chunked.first_chunk(5, 4, on_cpu=True) == 8


@pytest.mark.parametrize("devices,per_run", [(1, 0.5), (8, 2.0)])
def test_fitting_chunk_counts_the_shared_inputs_once(devices, per_run):
    """An 80 GB accelerator: 10 GiB of dataset shared by every run plus ``per_run`` GiB per run; the whole
    grid (200 runs) does not fit, the next chunk is the largest that does."""
    gib = chunked.GIB
    budget = chunked.budget_from_free([int(80e9)], on_cpu=False)
    footprint = lambda chunk: 10 * gib + chunk // devices * per_run * gib  # noqa: E731  per device
    chunk = chunked.fitting_chunk(200, devices, int(footprint(200)), shared=int(10 * gib), budget=budget)
    assert chunk % devices == 0 and footprint(chunk) <= budget < footprint(chunk + devices)
    if devices == 1:  # a proportional shrink (the dataset counted per run) would overshoot the budget
        assert int(200 * budget / footprint(200)) > chunk
    assert chunked.fitting_chunk(200, devices, int(footprint(200)), shared=int(60 * gib), budget=budget) == devices


SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    import ganno_jax as gj
    from ganno_jax import evaluate
    from ganno_jax.evaluation import controllers
    assert jax.device_count() == 4, jax.devices()
    task = gj.tasks.get("digits-mlp", tau=2, horizon=2, eval_batch=64)
    methods = [controllers.baseline("constant"), controllers.baseline("random")]
    grid = dict(init_lrs=(1e-3, 3e-3, 1e-2), seeds=1)  # 3 runs per program: padded to 4 devices
    split = evaluate.run_many(methods, task, **grid)
    single = evaluate.run_many(methods, task, devices=1, **grid)
    for a, b in zip(split, single):
        assert a.plan.devices == 4 and a.plan.chunk % 4 == 0, a.plan
        assert b.plan.devices == 1, b.plan
        for k in evaluate.CURVE_KEYS:
            np.testing.assert_allclose(a.curves[k], b.curves[k], rtol=1e-5, atol=1e-6, err_msg=k)
    print("GRID SPLIT OK")
""")


def test_grid_split_over_four_devices_equals_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "GRID SPLIT OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_grid_mesh_is_none_on_one_device():
    assert chunked.grid_mesh(1) is None
    with pytest.raises(ValueError, match="num_devices"):
        chunked.grid_mesh(jax.device_count() + 1)
