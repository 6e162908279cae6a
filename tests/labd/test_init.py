"""The ``labd`` package itself (labd/__init__.py): its version, and that importing it is cheap."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import labd


def test_version_matches_the_installed_distribution() -> None:
    assert labd.__version__ == version("labd")


def test_import_labd_loads_nothing_heavy() -> None:
    probe = "import sys, labd; print(sorted(m for m in sys.modules if m.startswith('labd')))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "['labd']"
