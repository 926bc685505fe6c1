"""Files of every folder the package writes: atomic writes and refuse-or-replace an output folder.

Every command and script that writes a folder (``ganno train`` / ``evaluate`` / ``demo``, the
``experiments/*.py`` scripts) prepares it with ``prepare_out`` and writes files with ``write_atomic``
(temp file + ``os.replace``: a reader never sees half a file); with several processes
(``ganno_jax.distributed``) both act in process 0 only, as ``evaluation.plots.save_figure`` does.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Optional, Sequence

from ganno_jax import distributed


def write_atomic(path: str, text: str | bytes) -> None:
    """Write ``text`` (``bytes``: written as they are) to ``path`` via a temporary file and ``os.replace`` (never
    half-written); with several processes (``distributed``) only process 0 writes, the others return at once."""
    if not distributed.is_writer():
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _inside(path: str, folder: str) -> bool:
    return (os.path.abspath(path) + os.sep).startswith(os.path.abspath(folder) + os.sep)


def check_out(path: str, overwrite: bool, protect: Sequence[Optional[str]] = (), what: str = "results folder",
              hint: str = "pass --overwrite to replace it") -> None:
    """Checks, changing nothing, that ``prepare_out`` may use ``path``: an existing non-empty folder
    is a ``FileExistsError`` (naming ``what`` and ``hint``) unless ``overwrite``, and a ``ValueError``
    when one of the ``protect`` paths (folders the caller still reads, e.g. a reused training run)
    lies inside it. ``None`` entries of ``protect`` are ignored."""
    if os.path.exists(path) and os.listdir(path):
        if not overwrite:
            raise FileExistsError(f"{what} {path!r} exists; {hint}")
        for kept in protect:
            if kept and _inside(kept, path):
                raise ValueError(f"{kept!r} lies inside --out {path!r}, which --overwrite would delete; "
                                 f"copy it elsewhere first")


def prepare_out(path: str, overwrite: bool, protect: Sequence[Optional[str]] = (), what: str = "results folder",
                hint: str = "pass --overwrite to replace it") -> str:
    """Creates the folder ``path`` after ``check_out`` (same arguments), deleting an existing one first
    (only with ``overwrite``); returns ``path``. With several processes every process checks (all fail
    alike), process 0 creates, and all wait for it."""
    check_out(path, overwrite, protect, what, hint)
    if distributed.is_writer():
        if os.path.exists(path) and os.listdir(path):
            shutil.rmtree(path)
        os.makedirs(path, exist_ok=True)
    distributed.barrier(f"prepare_out {os.path.abspath(path)}")
    return path
