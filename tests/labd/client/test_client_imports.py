"""``import labd.client`` loads the client and the wire contract, never the daemon.

A notebook, the GUI or a script on another machine pays only for what it uses, and a
change to the daemon cannot break a client that never runs it (docs/architecture.md).
The import-linter contracts in pyproject.toml check the same for every import of the
code; this checks what one real import loads.
"""

from __future__ import annotations

import json
import subprocess
import sys

DAEMON_MODULES = (
    "labd.rpc",
    "labd.supervisor",
    "labd.daemon",
    "labd.config",
    "labd.streams",
    "labd.scripting",
    "labd.setpoints",
    "labd.loopwatch",
    "labd.rings.writer",
    "labd.rings.persister",
    "labd.rings.ringset",
    "labd.rings.replay",
    "drivers",
    "gui",
)
"""The daemon's packages and modules (and the GUI, which builds on the client)."""


def loaded_by(statement: str) -> list[str]:
    """Every module in ``sys.modules`` after ``statement`` runs in a fresh interpreter."""
    code = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules: list[str] = json.loads(result.stdout)
    return modules


def daemon_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in DAEMON_MODULES)]


def test_importing_the_client_loads_no_daemon_code() -> None:
    modules = loaded_by("import labd.client")
    assert daemon_modules(modules) == []
    assert "labd.client" in modules and "labd.contract.schema" in modules


def test_the_blocking_client_and_ring_readers_load_no_daemon_code() -> None:
    modules = loaded_by("from labd.client import connect_blocking; from labd.rings import attach")
    assert daemon_modules(modules) == []
    assert "labd.rings.reader" in modules
