"""labd.rpc.sockets: connections get buffers big enough for a frame to cross in few slices."""

from __future__ import annotations

import socket
from pathlib import Path

from labd.contract.sockets import SOCKET_BUFFER_BYTES, tune
from labd.rpc import sockets


def test_tune_asks_for_big_buffers() -> None:
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        default = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        tune(a)
        tuned = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    # Linux doubles the request and caps it at wmem_max (doubled too).
    assert tuned == 2 * min(SOCKET_BUFFER_BYTES, wmem_max)
    assert tuned >= default


def test_listener_is_private(tmp_path: Path) -> None:
    path = tmp_path / "labd.sock"
    listener = sockets.bind_private(path)
    with listener:
        assert path.stat().st_mode & 0o777 == 0o600
        assert not listener.getblocking()
