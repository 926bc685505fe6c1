"""Style: ``ruff check`` (configured in ``pyproject.toml``'s ``[tool.ruff]``) passes on the whole repository."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_check_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", ROOT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ruff check failed:\n{proc.stdout}{proc.stderr}"
