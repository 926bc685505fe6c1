"""Every ``notebooks/*.ipynb`` runs top to bottom at a tiny size, and is stored without outputs.

Convention (papermill style, see ``notebooks/README.md``): each notebook has one code cell tagged
``parameters`` holding its sizes with ``SMOKE = False``; the test inserts a cell ``SMOKE = True`` right
after it, and the notebook's later cells choose tiny sizes when ``SMOKE`` is set. The notebook runs with
nbclient in an ipykernel started from this interpreter (a kernelspec written to a temporary folder, so
no installed ``python3`` kernelspec, nor the one on ``PATH``, is needed), with ``JAX_PLATFORMS=cpu`` and
a temporary working directory.
"""
from __future__ import annotations

import glob
import json
import os
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
SMOKE_CELL = "SMOKE = True  # injected by tests/test_notebooks.py: tiny sizes"
CELL_TIMEOUT_S = 300
KERNEL_NAME = "ganno-test-python"


def _ids(paths):
    return [os.path.basename(p) for p in paths]


def with_smoke_cell(nb):
    """``nb`` with a code cell ``SMOKE = True`` inserted after its one cell tagged ``parameters``;
    ``ValueError`` if it has none or several."""
    tagged = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"notebook needs exactly one code cell tagged 'parameters' (found {len(tagged)})")
    nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(SMOKE_CELL, metadata={"tags": ["injected-parameters"]}))
    return nb


def kernel_manager(folder: str) -> AsyncKernelManager:
    """Kernel manager whose kernel is this interpreter's ipykernel (kernelspec written under ``folder``)."""
    spec_dir = os.path.join(folder, "kernels", KERNEL_NAME)
    os.makedirs(spec_dir)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "ganno tests", "language": "python"}, f)
    specs = KernelSpecManager(kernel_dirs=[os.path.join(folder, "kernels")])
    return AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def test_notebooks_exist():
    assert any(os.path.basename(p) == "quickstart.ipynb" for p in NOTEBOOKS), NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    stored = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not stored, (f"{os.path.basename(path)}: code cells {stored} hold outputs or execution counts; "
                        "clear them before committing (notebooks/README.md shows how)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_at_smoke_size(path, tmp_path):
    nb = with_smoke_cell(nbformat.read(path, as_version=4))
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(nb, km=kernel_manager(str(tmp_path)), timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(work)}})
    client.execute(env={**os.environ, "JAX_PLATFORMS": "cpu"})
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_smoke_cell_needs_one_parameters_cell():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("SMOKE = False")])
    with pytest.raises(ValueError, match="tagged 'parameters'"):
        with_smoke_cell(nb)
