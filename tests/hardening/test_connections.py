"""Connection limits and pre-authentication safety, attacked from outside a real daemon.

Floods past the open-file limit, oversize announcements before unlock, silent and
guessing connections, crowds of honest clients, the wrong protocol for a port, and a
``--listen`` that would put the token on the network in clear text. Each attack must
cost the daemon nothing it does not get back, and an honest client must still get in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import capnp
import pytest
import trio

from capabilities import PermissionDenied, Readable
from labd import aio
from labd.client import ConnectionLost, NoDaemon, connect, connect_blocking
from labd.client.errors import ConnectionClosed
from labd.client.session import open_session
from labd.contract import schema
from labd.rpc import sockets
from tests.hardening.conftest import LabdProcess, start_labd
from tests.labd.client.test_lab import free_port, self_signed_cert
from tests.labd.rpc.conftest import REPO, wait_until_ready
from tests.labd.rpc.test_server import daemon_resources

_s: Any = schema.load()

CONFIG = """
[instruments.stage]
driver = "sim.stage"

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
"""
"""No camera: its rings take seconds to create, and nothing here needs frames."""

FD_LIMIT = 256
"""The daemon's open-file limit in the flood test: low enough that a flood really hits it."""
FLOOD = 1100


def start_limited_labd(tmp: Path, *extra: str, nofile: int) -> LabdProcess:
    """:func:`start_labd` with ``RLIMIT_NOFILE`` at ``nofile`` (soft and hard) in the daemon."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "lab.toml").write_text(CONFIG)
    sock = tmp / "run" / "labd.sock"
    log = tmp / "labd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labd", "serve", "--config", str(tmp / "lab.toml"),
             "--socket", str(sock), *extra],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=limit,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
    return wait_until_ready(proc, sock, log)


def unlock_bytes(token: str) -> bytes:
    """What a pycapnp client sends to unlock: its Bootstrap and ``unlock(token)`` messages,
    captured on a socket pair (so a flood of raw sockets can authenticate without each
    running an RPC system)."""

    async def capture() -> bytes:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            ours.setblocking(False)
            stream = await capnp.AsyncIoStream.create_unix_connection(sock=ours)
            client = capnp.TwoPartyClient(stream)
            bootstrap = client.bootstrap().cast_as(_s.Bootstrap)
            pending = bootstrap.unlock(token)
            await asyncio.sleep(0.2)
            theirs.setblocking(False)
            data = theirs.recv(65536)
            del pending, bootstrap
            client.close()
            stream.close()
            return data

    data: bytes = asyncio.run(capnp.run(capture()))
    return data


def raw_flood(family: int, address: Any, count: int, first: bytes = b"") -> list[socket.socket]:
    """``count`` connections to ``address``, each having sent ``first``; connections the
    kernel refuses (a full backlog) are left out."""
    flood = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(address)
        except BlockingIOError:
            if family == socket.AF_UNIX:  # unix: a full backlog, not a connection
                sock.close()
                continue
        except OSError:
            sock.close()
            continue
        flood.append(sock)
    for sock in flood:
        with contextlib.suppress(OSError):
            sock.send(first)
    return flood


def bulk_port(daemon: LabdProcess) -> int:
    found = re.search(rb"bulk channel of \S+ on [^:]+:(\d+)", daemon.log.read_bytes())
    assert found, daemon.log.read_text()
    return int(found.group(1))


def read_meter(address: str, token: str, tls_ca: str | None = None) -> str:
    with connect_blocking(address, token=token, tls_ca=tls_ca) as lab:
        return lab.instrument("meter").get(Readable).read().unit


def private_kib(pid: int) -> int:
    """The private (anonymous) memory of ``pid``: its RSS without the shared-memory rings."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


# ---------------------------------------------------------------- floods


def test_a_flood_past_the_open_file_limit_leaves_the_daemon_serving(tmp_path: Path) -> None:
    port = free_port()
    daemon = start_limited_labd(tmp_path, "--listen", f"127.0.0.1:{port}", nofile=FD_LIMIT)
    try:
        baseline_fds = daemon_resources(daemon.proc.pid)[0]
        unlock = unlock_bytes(daemon.token)
        # Authenticated connections hold their descriptors: this really uses them all up.
        flood = raw_flood(socket.AF_UNIX, str(daemon.socket), FLOOD, unlock)
        flood += raw_flood(socket.AF_INET, ("127.0.0.1", port), FLOOD // 4, unlock)
        flood += raw_flood(socket.AF_INET, ("127.0.0.1", bulk_port(daemon)), FLOOD, b"x" * 32)
        assert len(flood) > FD_LIMIT * 2
        log = b""
        deadline = time.monotonic() + 15
        while log.count(b"Too many open files") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            log = daemon.log.read_bytes()
        assert b"cannot accept on the unix socket: Too many open files" in log, log.decode()
        assert daemon.proc.poll() is None, "the daemon survives"
        for sock in flood:
            sock.close()
        assert read_meter(daemon.address, daemon.token)
        assert read_meter(f"tcp://127.0.0.1:{port}", daemon.token)
        deadline = time.monotonic() + 10  # the closed ones still in the backlog drain
        while daemon_resources(daemon.proc.pid)[0] > baseline_fds + 4:
            assert time.monotonic() < deadline, (daemon_resources(daemon.proc.pid), baseline_fds)
            time.sleep(0.2)
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def test_silent_connections_cost_no_descriptors_and_a_full_backlog_is_waited_out(
    tmp_path: Path,
) -> None:
    """Silent connections past the listen backlog: the daemon accepts at most
    ``max_unauthenticated`` of them at a time (its descriptors stay bounded), the kernel
    refuses the ones past the backlog, and an honest client that finds the backlog full
    keeps trying instead of taking the refusal for a connection."""
    daemon = start_limited_labd(tmp_path, nofile=FD_LIMIT)
    try:
        baseline_fds = daemon_resources(daemon.proc.pid)[0]
        wanted = sockets.BACKLOG + 200
        flood = raw_flood(socket.AF_UNIX, str(daemon.socket), wanted)
        assert len(flood) < wanted, "the backlog is full"
        honest: list[str | BaseException] = []

        def connect_honestly() -> None:
            try:
                honest.append(read_meter(daemon.address, daemon.token))
            except BaseException as exc:
                honest.append(exc)

        client = threading.Thread(target=connect_honestly)
        client.start()
        time.sleep(1.0)
        assert daemon_resources(daemon.proc.pid)[0] <= baseline_fds + 64 + 4
        assert honest == [], "still waiting for room, not failed"
        for sock in flood:
            sock.close()
        client.join(timeout=30)
        assert honest and isinstance(honest[0], str), honest
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()


def test_connections_past_the_limit_are_refused_with_a_reason(tmp_path: Path) -> None:
    daemon = start_labd(tmp_path, "--max-connections", "3", config=CONFIG)
    try:
        labs = [connect_blocking(daemon.address, token=daemon.token) for _ in range(3)]
        try:
            with pytest.raises(ConnectionClosed, match="3 connections open, the daemon's limit"):
                read_meter(daemon.address, daemon.token)
        finally:
            labs.pop().close()
        deadline = time.monotonic() + 10
        while True:  # once the daemon has seen that connection go, its place is free
            try:
                assert read_meter(daemon.address, daemon.token)
                break
            except ConnectionClosed:
                assert time.monotonic() < deadline, "the place never came free"
                time.sleep(0.1)
        for lab in labs:
            lab.close()
    finally:
        daemon.stop()
    assert "refused a connection on the unix socket: 3 connections open" in daemon.log.read_text()


# ---------------------------------------------------------------- before unlock


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(tmp_path_factory.mktemp("connections"), config=CONFIG)
    yield daemon
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def test_an_oversize_announcement_before_unlock_is_cut_off(shared_daemon: LabdProcess) -> None:
    pid = shared_daemon.proc.pid
    before = private_kib(pid)
    sent = 0
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(shared_daemon.socket))
        raw.settimeout(5)
        raw.sendall(struct.pack("<II", 0, 2**25))  # one segment of 2^25 words: 256 MiB
        chunk = bytes(1 << 20)
        with pytest.raises(OSError):  # EPIPE or ECONNRESET: the daemon hung up
            while sent < 256 << 20:
                sent += raw.send(chunk)
    assert sent < 64 << 20, "cut off long before the announced size"
    assert private_kib(pid) - before < 8 * 1024, "and nothing of it was buffered"
    assert read_meter(shared_daemon.address, shared_daemon.token)
    assert "sent a message of 256 MiB before unlocking" in shared_daemon.log.read_text()


def test_a_connection_that_does_not_unlock_is_closed_after_the_deadline(
    shared_daemon: LabdProcess,
) -> None:
    with socket.socket(socket.AF_UNIX) as silent, socket.socket(socket.AF_UNIX) as dawdler:
        silent.connect(str(shared_daemon.socket))
        dawdler.connect(str(shared_daemon.socket))
        dawdler.sendall(unlock_bytes("not-the-token")[:30])  # a start, never finished
        for sock in (silent, dawdler):
            sock.settimeout(20)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert b"no unlock or redeem within 10 s" in answer  # the Abort's reason


def test_two_hundred_honest_clients_at_once_all_get_in(shared_daemon: LabdProcess) -> None:
    async def one(results: list[str]) -> None:
        async with connect(shared_daemon.address, token=shared_daemon.token) as lab:
            meter = await lab.instrument("meter").get(Readable)
            results.append((await meter.read()).unit)

    async def main() -> list[str]:
        results: list[str] = []
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one, results)
        return results

    assert len(aio.run(main)) == 200


async def guess(address: str, outcomes: list[str], attempts: int = 1000) -> None:
    """Wrong lab and sharing tokens, in turn, on one connection until it is closed."""
    async with open_session(address) as link:
        for attempt in range(attempts):
            try:
                if attempt % 2:
                    await link.call(lambda: link.bootstrap.redeem("share-guessed"))
                else:
                    await link.call(lambda: link.bootstrap.unlock("guessed"))
            except PermissionDenied:
                outcomes.append("denied")
            except ConnectionLost as exc:
                outcomes.append(str(exc))
                return


def test_wrong_tokens_are_rate_limited_and_the_right_one_still_works(
    shared_daemon: LabdProcess,
) -> None:
    address = shared_daemon.address

    async def main() -> None:
        one: list[str] = []
        await guess(address, one)
        assert one[:5] == ["denied"] * 5 and len(one) == 6
        assert one[5] == (
            f"the labd daemon at {address} closed the connection: more than 5 wrong tokens"
            " on one connection"
        )
        # A flood from many connections: one peer's guesses are answered one at a time,
        # each dearer than the last. The right token is never made to wait.
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(guess, address, [])
            with trio.fail_after(15):
                while "each now costs" not in shared_daemon.log.read_text():
                    await trio.sleep(0.1)
            with trio.fail_after(5):  # the flood's guesses cost seconds each by now
                async with connect(address, token=shared_daemon.token) as lab:
                    assert (await (await lab.instrument("meter").get(Readable)).read()).unit
            nursery.cancel_scope.cancel()

    aio.run(main)
    log = shared_daemon.log.read_text()
    assert re.search(r"wrong tokens from pid \d+ \(uid \d+\) on the unix socket: \d+ in", log)


# ---------------------------------------------------------------- TCP and TLS


def test_the_wrong_protocol_for_a_port_is_told_in_one_line(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    tls_port, plain_port = free_port(), free_port()
    tls = start_labd(tmp_path / "tls", "--listen", f"127.0.0.1:{tls_port}",
                     "--tls-cert", str(cert), "--tls-key", str(key), config=CONFIG)  # fmt: skip
    try:
        plain = start_labd(tmp_path / "plain", "--listen", f"127.0.0.1:{plain_port}", config=CONFIG)
    except BaseException:
        tls.stop()
        raise
    try:
        with pytest.raises(ConnectionClosed) as plain_to_tls:
            read_meter(f"tcp://127.0.0.1:{tls_port}", tls.token)
        assert str(plain_to_tls.value) == (
            f"the labd daemon at tcp://127.0.0.1:{tls_port} closed the connection: this port"
            f" speaks TLS: connect with tls://127.0.0.1:{tls_port} (and --tls-ca CERT for a"
            " self-signed certificate)"
        )
        with pytest.raises(NoDaemon) as tls_to_plain:
            read_meter(f"tls://127.0.0.1:{plain_port}", "x", tls_ca=str(cert))
        assert str(tls_to_plain.value).startswith(
            f"tls://127.0.0.1:{plain_port} does not speak TLS"
        )
        assert f"is reached as tcp://127.0.0.1:{plain_port}" in str(tls_to_plain.value)
        # The command line says the same, in one line.
        result = subprocess.run(
            [sys.executable, "-m", "labd", "ls", "--connect", f"tcp://127.0.0.1:{tls_port}",
             "--token", tls.token],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
        assert result.returncode == 3
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "this port speaks TLS: connect with tls://" in result.stderr
        # Both daemons serve the right clients all along.
        assert read_meter(f"tls://127.0.0.1:{tls_port}", tls.token, tls_ca=str(cert))
        assert read_meter(f"tcp://127.0.0.1:{plain_port}", plain.token)
    finally:
        tls.stop()
        plain.stop()


def test_listening_beyond_loopback_without_tls_is_refused(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "labd", "serve", "--socket", str(tmp_path / "labd.sock"),
               "--listen", f"0.0.0.0:{port}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"labd serve: --listen 0.0.0.0:{port}: not a loopback address, and without TLS the lab"
        " token would cross the network in clear text; give --tls-cert/--tls-key (or"
        " --insecure on a network you trust)"
    ]
    daemon = start_labd(
        tmp_path / "insecure", "--listen", f"0.0.0.0:{port}", "--insecure", config=CONFIG
    )
    try:
        assert read_meter(f"tcp://127.0.0.1:{port}", daemon.token)
    finally:
        daemon.stop()
    assert "without TLS (--insecure)" in daemon.log.read_text()
