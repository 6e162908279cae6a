"""Every test gets a private, empty data directory, removed when it ends.

Daemons persist their streams by default into ``$XDG_DATA_HOME/labd`` (docs/live-data.md),
so a test daemon would otherwise write into the developer's own data directory, meet the
files of other tests, and fill the disk (a camera writes 10-80 MiB/s). ``XDG_DATA_HOME``
points into a fresh temporary directory for each test, which the ``labd serve``
subprocesses a test starts inherit; daemons shared by a module (module-scoped fixtures,
set up before any test's own fixtures) get one per module. Each is deleted at once
afterwards: pytest keeps its ``tmp_path`` directories of the last runs, which would keep
gigabytes of frames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

XDG = "XDG_DATA_HOME"


def _private_data_home(scope: str) -> Iterator[Path]:
    before = os.environ.get(XDG)
    home = Path(tempfile.mkdtemp(prefix=f"labd-data-{scope}-"))
    os.environ[XDG] = str(home)
    try:
        yield home
    finally:
        if before is None:
            os.environ.pop(XDG, None)
        else:
            os.environ[XDG] = before
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def session_data_home() -> Iterator[Path]:
    yield from _private_data_home("session")


@pytest.fixture(scope="module", autouse=True)
def module_data_home() -> Iterator[Path]:
    yield from _private_data_home("module")


@pytest.fixture(autouse=True)
def data_home() -> Iterator[Path]:
    """This test's ``$XDG_DATA_HOME``; the daemons it starts persist under ``data_home / "labd"``."""
    yield from _private_data_home("test")
