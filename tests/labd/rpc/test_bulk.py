"""labd.rpc.bulk against a real daemon over TCP and TLS: frames beside the message."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from labd import aio
from labd.client import connect
from labd.client.bulk import BulkReader
from tests.labd.client.test_lab import free_port, self_signed_cert
from tests.labd.rpc.conftest import REPO, LabdProcess, start_labd
from tests.labd.rpc.test_server import daemon_resources

CONFIG = """
[instruments.stage]
driver = "sim.stage"

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 20
sensor_width = 512      # 512 KiB frames: above the bulk threshold, cheap on a CI core
sensor_height = 512
"""


@pytest.fixture(scope="module")
def tcp_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabdProcess, str]]:
    port = free_port()
    daemon = start_labd(
        tmp_path_factory.mktemp("bulk"), "--listen", f"127.0.0.1:{port}", config=CONFIG
    )
    yield daemon, f"tcp://127.0.0.1:{port}"
    daemon.stop()


def bulk_port(daemon: LabdProcess) -> int:
    found = re.search(rb"bulk channel of \S+ on [^:]+:(\d+)", daemon.log.read_bytes())
    assert found, daemon.log.read_text()
    return int(found.group(1))


async def frames_by_seq(lab: object, bulk: bool, count: int) -> tuple[dict[int, bytes], int]:
    """``count`` frames (seq → pixel bytes) and how many of them came on the bulk socket."""
    frames: dict[int, bytes] = {}
    async with lab.subscribe("camera/frames", bulk=bulk) as sub:  # type: ignore[attr-defined]
        with trio.fail_after(20):
            async for message in sub:
                frames[message.seq] = message.frame().data.tobytes()
                if len(frames) == count:
                    break
        return frames, sub.bulk_batches


def test_frames_via_bulk_are_byte_identical_to_inline(
    tcp_daemon: tuple[LabdProcess, str],
) -> None:
    daemon, address = tcp_daemon

    async def main() -> None:
        async with connect(address, token=daemon.token) as lab:
            results: dict[bool, tuple[dict[int, bytes], int]] = {}

            async def collect(bulk: bool) -> None:
                results[bulk] = await frames_by_seq(lab, bulk, 12)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect, True)
                nursery.start_soon(collect, False)
        (via_bulk, bulk_count), (inline, inline_count) = results[True], results[False]
        assert bulk_count >= 10, "all but the offer's frame come on the bulk socket"
        assert inline_count == 0
        common = via_bulk.keys() & inline.keys()
        assert len(common) >= 3
        for seq in common:
            assert via_bulk[seq] == inline[seq]

    aio.run(main)


def test_a_wrong_token_is_refused_and_frames_come_inline(
    tcp_daemon: tuple[LabdProcess, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, address = tcp_daemon
    connect_honestly = BulkReader.connect

    def present_a_forged_token(self: BulkReader, port: int, token: bytes) -> None:
        connect_honestly(self, port, bytes(b ^ 1 for b in token))

    monkeypatch.setattr(BulkReader, "connect", present_a_forged_token)

    async def main() -> None:
        async with connect(address, token=daemon.token) as lab:
            # 1.5 s of frames: the offer lapses after 1 s, the daemon then gives it up.
            frames, bulk_count = await frames_by_seq(lab, True, 30)
        assert bulk_count == 0 and len(frames) == 30

    aio.run(main)
    log = daemon.log.read_text()
    assert "refused a bulk connection: wrong or expired token" in log
    assert "sending inline" in log


def test_a_stranger_on_the_bulk_port_gets_nothing(tcp_daemon: tuple[LabdProcess, str]) -> None:
    daemon, _ = tcp_daemon
    with socket.create_connection(("127.0.0.1", bulk_port(daemon)), timeout=5) as stranger:
        stranger.sendall(os.urandom(32))
        assert stranger.recv(1) == b"", "closed without a byte"


def test_tls_bulk_works_and_needs_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    daemon = start_labd(
        tmp_path / "d", "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
        "--tls-key", str(key), config=CONFIG,
    )  # fmt: skip
    try:

        async def main() -> None:
            address = f"tls://127.0.0.1:{port}"
            async with connect(address, token=daemon.token, tls_ca=str(cert)) as lab:
                frames, bulk_count = await frames_by_seq(lab, True, 6)
            assert bulk_count >= 4 and len(frames) == 6

        aio.run(main)
        # The bulk port speaks TLS with the daemon's certificate: a client that does not
        # trust it fails the handshake, one that skips TLS is closed without a byte.
        untrusting = ssl.create_default_context()
        with (
            socket.create_connection(("127.0.0.1", bulk_port(daemon)), timeout=5) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            untrusting.wrap_socket(raw, server_hostname="localhost")
        with socket.create_connection(("127.0.0.1", bulk_port(daemon)), timeout=5) as plain:
            plain.sendall(os.urandom(32))
            plain.settimeout(5)
            try:
                received = plain.recv(4096)
            except ConnectionResetError:  # closed with our bytes unread
                received = b""
            assert not received or received[0] == 0x15, "at most a TLS alert, never data"
    finally:
        daemon.stop()


TCP_SUBSCRIBERS = """
import sys, trio
from labd.aio import run
from labd.client import connect

async def one(address, token, ready):
    async with connect(address, token=token) as lab:
        async with lab.subscribe("camera/frames") as frames:
            for _ in range(3):
                await frames.__anext__()
            assert frames.bulk_batches
            ready.release()
            await trio.sleep_forever()

async def main(address, token, n):
    ready = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one, address, token, ready)
        for _ in range(n):
            await ready.acquire()
        print("subscribed", flush=True)

run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


def test_killed_tcp_subscribers_leave_no_fds(tcp_daemon: tuple[LabdProcess, str]) -> None:
    daemon, address = tcp_daemon
    pid = daemon.proc.pid

    async def cycle() -> None:
        async with connect(address, token=daemon.token) as lab:
            await frames_by_seq(lab, True, 3)

    aio.run(cycle)  # warm-up
    baseline = daemon_resources(pid)[0]
    for _ in range(2):
        victim = subprocess.Popen(
            [sys.executable, "-c", TCP_SUBSCRIBERS, address, daemon.token, "5"],
            stdout=subprocess.PIPE, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        try:
            assert victim.stdout is not None
            assert victim.stdout.readline() == b"subscribed\n"
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
    deadline = time.monotonic() + 5
    while (now := daemon_resources(pid)[0]) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)  # the daemon notices a dead socket on its next push
    assert now <= baseline, (now, baseline)
