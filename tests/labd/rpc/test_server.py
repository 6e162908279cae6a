"""labd.rpc.server against a real daemon subprocess: access, sharing, robustness."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import trio

from capabilities import FrameProducer, Movable, OutOfRange, PermissionDenied, Readable
from labd import aio
from labd.client import NoDaemon, Restriction, connect, connect_blocking, redeem_blocking
from labd.errors import UnknownInstrument
from tests.labd.rpc.conftest import REPO, LabdProcess


def test_socket_and_token_are_private(labd_daemon: LabdProcess) -> None:
    assert stat.S_IMODE(labd_daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(labd_daemon.token_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(labd_daemon.socket.parent.stat().st_mode) == 0o700


def test_no_token_no_access(labd_daemon: LabdProcess) -> None:
    with pytest.raises(PermissionDenied, match="wrong lab token"):
        connect_blocking(labd_daemon.address, token="guessed")
    with pytest.raises(PermissionDenied, match="sharing token"):
        redeem_blocking("share-guessed", labd_daemon.address)


def test_no_daemon_says_how_to_start_one(tmp_path: object) -> None:
    with pytest.raises(NoDaemon, match="start one with `labd serve`"):
        connect_blocking("/nonexistent/labd.sock", token="x")


def test_typed_errors_cross_the_wire(labd_daemon: LabdProcess) -> None:
    with connect_blocking(labd_daemon.address) as lab:
        with pytest.raises(UnknownInstrument, match="known: stage, meter, camera"):
            lab.instrument("nope").get(Movable)
        stage = lab.instrument("stage").get(Movable)
        with pytest.raises(OutOfRange) as info:
            stage.move_abs(1e6)
        assert "Traceback" not in str(info.value)


def test_several_clients_at_once(labd_daemon: LabdProcess) -> None:
    labs = [connect_blocking(labd_daemon.address) for _ in range(3)]
    try:
        meters = [lab.instrument("meter").get(Readable) for lab in labs]
        for _ in range(5):
            readings = [m.read() for m in meters]
            assert all(r.unit for r in readings)
        subs = [lab.subscribe("meter/reading") for lab in labs]
        for sub in subs:
            assert next(sub).batch.num_rows >= 1
            sub.close()
    finally:
        for lab in labs:
            lab.close()


SUBSCRIBER = """
import sys
from labd.client import connect_blocking
lab = connect_blocking(sys.argv[1])
for message in lab.subscribe("camera/frames", window=4):
    print(message.seq, flush=True)
"""


def test_killed_subscriber_harms_nobody(labd_daemon: LabdProcess) -> None:
    victim = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, labd_daemon.address],
        stdout=subprocess.PIPE, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    try:
        with connect_blocking(labd_daemon.address) as lab:
            with lab.subscribe("meter/reading") as readings:
                assert victim.stdout is not None
                victim.stdout.readline()  # the victim is receiving frames now
                for _ in range(4):  # catch up: we were slower than the stream until now
                    readings.next(timeout=5)
                seqs = [readings.next(timeout=5).seq]
                victim.send_signal(signal.SIGKILL)
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    seqs.append(readings.next(timeout=5).seq)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap"
            assert len(seqs) >= 5
            # Healthy: each instrument ready, or busy serving a poll right now; none faulted.
            assert {i.state for i in lab.instruments()} <= {"ready", "busy"}
    finally:
        victim.kill()
        victim.wait()


def test_cancelling_a_call_cancels_it_in_the_daemon(labd_daemon: LabdProcess) -> None:
    async def main() -> float:
        async with connect(labd_daemon.address) as lab:
            stage = await lab.instrument("stage").get(Movable)
            await stage.move_abs(0.0)
            await stage.wait_settled(30)
            await stage.move_abs(20.0)  # 10 s at 2 mm/s
            with trio.move_on_after(0.3):
                await stage.wait_settled(30)
            start = trio.current_time()
            await stage.position()  # would queue behind wait_settled had it kept running
            elapsed = trio.current_time() - start
            await lab.instrument("stage").get(Movable)
            stoppable = await lab.instrument("stage").get(__import__("capabilities").Stoppable)
            await stoppable.stop()
            return elapsed

    assert aio.run(main) < 0.5


def test_shared_capability_between_two_clients(labd_daemon: LabdProcess) -> None:
    with connect_blocking(labd_daemon.address) as owner:
        stage = owner.instrument("stage")
        stage.get(Movable).move_abs(1.0)
        token, revoker = stage.share(Restriction(ranges={"position": (0.5, 1.5)}))
        with redeem_blocking(token, labd_daemon.address) as shared:
            assert shared.info().name == "stage"
            moved = shared.get(Movable)
            assert moved.limits().high == 1.5
            with pytest.raises(OutOfRange, match="restricted capability"):
                moved.move_abs(5.0)
            moved.move_abs(1.2)
            assert abs(moved.wait_settled(10).value - 1.2) < 0.01
            assert token in [s.token for s in owner.shares()]
            revoker.revoke()
            with pytest.raises(PermissionDenied, match="revoked"):
                moved.position()
        with pytest.raises(PermissionDenied):
            redeem_blocking(token, labd_daemon.address)


def test_read_only_view_only_reads(labd_daemon: LabdProcess) -> None:
    with connect_blocking(labd_daemon.address) as owner:
        token, _ = owner.instrument("camera").share(Restriction(read_only=True))
        with redeem_blocking(token, labd_daemon.address) as shared:
            camera = shared.get(FrameProducer)
            assert camera.snap().data.ndim == 2
            with pytest.raises(PermissionDenied, match="read-only"):
                shared.get(__import__("capabilities").ExposureControl).set_exposure(0.1)
            with shared.subscribe("frames") as frames:
                assert frames.next(timeout=5).frame().data.ndim == 2
        owner.revoke(token)


def test_expired_share_is_refused(labd_daemon: LabdProcess) -> None:
    with connect_blocking(labd_daemon.address) as owner:
        token, _ = owner.instrument("meter").share(Restriction(expires_in=0.3))
        with redeem_blocking(token, labd_daemon.address) as shared:
            shared.get(Readable).read()
            time.sleep(0.4)
            with pytest.raises(PermissionDenied, match="expired"):
                shared.get(Readable).read()


def test_garbage_on_the_socket_closes_only_that_connection(labd_daemon: LabdProcess) -> None:
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(str(labd_daemon.socket))
        raw.settimeout(5)
        raw.sendall(b"\xff" * 64 + b"GET / HTTP/1.1\r\n\r\n" * 10)
        answer = b""
        while chunk := raw.recv(4096):  # an Abort message, then the daemon hangs up
            answer += chunk
        assert len(answer) < 4096
    with connect_blocking(labd_daemon.address) as lab:
        assert lab.instrument("meter").get(Readable).read().unit
    assert labd_daemon.proc.poll() is None


def test_schema_compiles_with_the_official_tool() -> None:
    if subprocess.run(["which", "capnp"], capture_output=True).returncode != 0:
        pytest.fail("the capnp tool is missing: apt-get install capnproto libcapnp-dev")
    subprocess.run(
        ["capnp", "compile", "-o-", str(REPO / "schema" / "labd.capnp")],
        check=True, capture_output=True,
    )  # fmt: skip


MANY_SUBSCRIBERS = """
import sys, trio
from labd.aio import run
from labd.client import connect

async def one(address, ready):
    async with connect(address) as lab:
        async with lab.subscribe("camera/frames") as frames, lab.subscribe("meter/reading") as readings:
            await frames.__anext__()
            await readings.__anext__()
            async with lab.watch_states():
                ready.release()
                await trio.sleep_forever()

async def main(address, n):
    ready = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one, address, ready)
        for _ in range(n):
            await ready.acquire()
        print("subscribed", flush=True)

run(main, sys.argv[1], int(sys.argv[2]))
"""


def daemon_resources(pid: int) -> tuple[int, list[str]]:
    """(open fds, /dev/shm files it holds or maps) of process ``pid``."""
    fds = os.listdir(f"/proc/{pid}/fd")
    with open(f"/proc/{pid}/maps") as maps:
        paths = [line.split(maxsplit=5)[5] for line in maps if len(line.split(maxsplit=5)) == 6]
    shm = {path.strip() for path in paths if path.startswith("/dev/shm/")}
    return len(fds), sorted(shm)


def test_vanished_clients_leave_no_fds_or_shared_memory(labd_daemon: LabdProcess) -> None:
    """50 connections that subscribe and vanish — 20 closed cleanly, 30 SIGKILLed with
    their process — leave the daemon's open fds and /dev/shm files where they were."""
    pid = labd_daemon.proc.pid

    def cycle_cleanly() -> None:
        with connect_blocking(labd_daemon.address) as lab:
            with lab.subscribe("camera/frames") as frames:
                frames.next(timeout=5)
            with lab.subscribe("meter/reading") as readings:
                readings.next(timeout=5)

    cycle_cleanly()  # warm-up: the first client may open what the daemon keeps for all
    baseline = daemon_resources(pid)
    for _ in range(20):
        cycle_cleanly()
    for _ in range(3):
        victim = subprocess.Popen(
            [sys.executable, "-c", MANY_SUBSCRIBERS, labd_daemon.address, "10"],
            stdout=subprocess.PIPE, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        try:
            assert victim.stdout is not None
            assert victim.stdout.readline() == b"subscribed\n"
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()

    def back_to_baseline(now: tuple[int, list[str]]) -> bool:
        # At most: a connection of the warm-up may still have been closing at baseline.
        return now[0] <= baseline[0] and set(now[1]) <= set(baseline[1])

    deadline = time.monotonic() + 5
    while not back_to_baseline(now := daemon_resources(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the daemon notices a dead socket on its next push
    assert back_to_baseline(now), (now, baseline)
