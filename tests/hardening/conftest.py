"""The adversarial suite: real ``labd serve`` subprocesses attacked over real sockets.

Every test here starts its own daemon (private socket, token and rings under its own
temporary directory) with :func:`start_labd`, so tests never meet each other or a daemon
the developer is running.
"""

from __future__ import annotations

from tests.labd.rpc.conftest import LAB_TOML, LabdProcess, start_labd

__all__ = ["LAB_TOML", "LabdProcess", "start_labd"]
