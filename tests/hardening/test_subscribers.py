"""Subscribers that stop reading, fail or leave cost the daemon a bounded, returned amount.

A subscriber here is a real client process that takes a few frames and is then frozen
with SIGSTOP (its socket, bulk connection or lane is no longer read), or a client whose
consumer stops taking batches. The daemon must hold at most its per-subscriber budget of
bytes for each, drop one that stays stuck, give the memory back once they are gone, cap
replay chunks whatever the client asks, and keep its rings and files private.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import capnp
import numpy as np
import pyarrow as pa
import pytest
import trio

from capabilities import Frame, Roi
from labd import aio, records
from labd.client import connect
from labd.client.replay import received_chunk
from labd.contract import schema
from labd.errors import LabdError
from labd.rpc.policy import Policy
from labd.rpc.replay import MAX_CHUNK_BYTES
from labd.rpc.subscriptions import IpcCache, SubscriberLimits, SubscriptionServer, push_stream
from labd.streams import Stream
from tests.hardening.conftest import LabdProcess, start_labd
from tests.labd.client.test_lab import free_port
from tests.labd.rpc.conftest import REPO, wait_until_ready

FRAME_BYTES = 2048 * 2048 * 2
CAMERA_TOML = """
[instruments.stage]
driver = "sim.stage"

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 10           # 2048x2048 uint16: 8 MiB frames, 80 MiB/s
"""
STUCK = 3
WINDOW = 16
"""What each stuck subscriber asks for: the most pushes in flight the daemon allows."""
PER_SUBSCRIBER = 3 * SubscriberLimits().budget(FRAME_BYTES)
"""A push of a frame costs up to about twice its bytes until it is read (the message and
pycapnp's copy for the socket); and a little more for the lane or bulk bookkeeping."""
SLACK = 96 << 20
"""Heap the first subscribers of a fresh daemon grow once (arenas, caches)."""

STUCK_CLIENT = """
import sys, trio
from labd import aio
from labd.client import connect

address, token, transport, window = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main() -> None:
    async with connect(address, token=token) as lab:
        sub = lab.subscribe(
            "camera/frames", window=window,
            shared_memory=transport == "lane", bulk=transport == "bulk",
        )
        async with sub:
            taken = 0
            async for _ in sub:
                taken += 1
                if taken >= 3 and (transport != "bulk" or sub.bulk_batches):
                    break
            print("frozen next", sub.bulk_batches, flush=True)
            await trio.sleep_forever()  # SIGSTOP comes now: nothing is read any more

aio.run(main)
"""


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, private) of ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    private = sum(int(line.split()[1]) for line in rollup if line.startswith("Private_"))
    return rss / 1024, private / 1024


@pytest.fixture(scope="module")
def camera_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabdProcess, int]]:
    port = free_port()
    # --no-persist: the persister's own mapping of the ring would count in the RSS measured.
    daemon = start_labd(
        tmp_path_factory.mktemp("subscribers"), "--listen", f"127.0.0.1:{port}", "--no-persist",
        config=CAMERA_TOML,
    )  # fmt: skip
    yield daemon, port
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def freeze_subscribers(address: str, token: str, transport: str) -> list[subprocess.Popen[str]]:
    """Start :data:`STUCK` clients that take a few frames and are then stopped (SIGSTOP)."""
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", STUCK_CLIENT, address, token, transport, str(WINDOW)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        for _ in range(STUCK)
    ]
    for client in clients:
        assert client.stdout is not None
        line = client.stdout.readline()
        assert line.startswith("frozen next"), f"the client did not subscribe: {line!r}"
        if transport == "bulk":
            assert int(line.split()[2]) > 0, "the frames should have come on the bulk socket"
        client.send_signal(signal.SIGSTOP)
    return clients


def leave(clients: list[subprocess.Popen[str]]) -> None:
    for client in clients:
        client.kill()
        client.wait()


@pytest.mark.parametrize("transport", ["inline", "bulk", "lane"])
def test_subscribers_that_stop_reading_cost_their_budget_and_give_it_back(
    camera_daemon: tuple[LabdProcess, int], transport: str
) -> None:
    daemon, port = camera_daemon
    pid = daemon.proc.pid
    address = daemon.address if transport == "lane" else f"tcp://127.0.0.1:{port}"
    time.sleep(1)
    baseline = memory_mib(pid)
    clients = freeze_subscribers(address, daemon.token, transport)
    try:
        peak = baseline
        deadline = time.monotonic() + 6  # 60 frames: 3 × 16 windows' worth, were it unbounded
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = memory_mib(pid)
            peak = (max(peak[0], now[0]), max(peak[1], now[1]))
    finally:
        leave(clients)
    allowed = (STUCK * PER_SUBSCRIBER + SLACK) / 2**20
    assert peak[0] - baseline[0] < allowed, f"RSS {baseline[0]:.0f} → {peak[0]:.0f} MiB"
    assert peak[1] - baseline[1] < allowed, f"private {baseline[1]:.0f} → {peak[1]:.0f} MiB"
    assert daemon.proc.poll() is None
    deadline = time.monotonic() + 5
    while (after := memory_mib(pid))[1] - baseline[1] > SLACK / 2**20 / 2:
        assert time.monotonic() < deadline, (
            f"private memory stayed at {after[1]:.0f} MiB after the subscribers left"
            f" (baseline {baseline[1]:.0f} MiB)"
        )
        time.sleep(0.25)


PATCHED_SERVE = """
import sys
from labd.rpc import subscriptions
subscriptions.DEFAULT_LIMITS = subscriptions.SubscriberLimits(stuck_s={stuck_s})
from labd.cli import main
sys.argv[0] = "labd"
sys.exit(main())
"""


def start_labd_dropping_after(tmp: Path, stuck_s: float) -> LabdProcess:
    """A real ``labd serve`` whose subscribers count as stuck after ``stuck_s``, not 30 s."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "lab.toml").write_text(CAMERA_TOML)
    sock = tmp / "run" / "labd.sock"
    log = tmp / "labd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", PATCHED_SERVE.format(stuck_s=stuck_s), "serve",
             "--config", str(tmp / "lab.toml"), "--socket", str(sock)],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
    return wait_until_ready(proc, sock, log)


def test_a_stuck_subscriber_is_dropped_and_told_why(tmp_path: Path) -> None:
    daemon = start_labd_dropping_after(tmp_path, stuck_s=2)
    try:

        async def main() -> str:
            async with connect(daemon.address) as lab:
                stuck = lab.subscribe("camera/frames", window=4, shared_memory=False)
                async with stuck, lab.subscribe("camera/frames", max_rate=2) as healthy:
                    await stuck.__anext__()  # then never again: its pushes are not answered
                    with trio.fail_after(15):
                        while b"dropped a subscriber" not in daemon.log.read_bytes():
                            await healthy.__anext__()  # a reading one is never dropped
                    sent, _ = await healthy.stats()
                    assert sent > 0
                    with pytest.raises(LabdError) as dropped:
                        await stuck.stats()
                    return str(dropped.value)

        why = aio.run(main)
        assert "dropped this subscription of camera/frames" in why
        assert "answered no push for 2 s" in why
        assert "Traceback" not in why
        assert daemon.log.read_text().count("dropped a subscriber") == 1, "logged once"
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


_s: Any = schema.load()


class _Sink(_s.BatchSink.Server):  # type: ignore[misc]
    def __init__(self, failure: str) -> None:
        self.failure = failure

    async def push(self, **_: Any) -> None:
        if self.failure == "handler-raises":
            raise RuntimeError("the client's push handler failed")
        if self.failure == "handler-hangs":
            await asyncio.sleep(3600)


def small_frame(seq: int) -> pa.RecordBatch:
    data = np.full((64, 64), seq, np.uint16)
    return records.frame_to_batch(Frame(data, 1.0, 0.01, Roi(0, 0, 64, 64), seq=seq))


QUICK = SubscriberLimits(stuck_s=0.1)


@pytest.mark.parametrize("failure", ["handler-raises", "client-gone", "handler-hangs"])
def test_failed_pushes_leave_no_pycapnp_object_to_the_garbage_collector(failure: str) -> None:
    """What the cyclic collector would free, it may free on any thread: a pycapnp object
    among it aborts the process. A failed push (or one cancelled because the subscriber
    was dropped) must leave none of them in a cycle."""

    async def one_subscriber() -> None:
        stream = Stream("camera/frames", records.FRAME_SCHEMA, "frames")
        near, far = socket.socketpair()
        client_end = await aio.aio(capnp.AsyncIoStream.create_unix_connection(sock=near))
        daemon_end = await aio.aio(capnp.AsyncIoStream.create_unix_connection(sock=far))
        server = capnp.TwoPartyServer(client_end, bootstrap=_Sink(failure))
        sink = capnp.TwoPartyClient(daemon_end).bootstrap().cast_as(_s.BatchSink)
        subscription = SubscriptionServer()
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                limits = QUICK if failure == "handler-hangs" else None
                push = partial(push_stream, max_rate=0, window=2, policy=Policy(), limits=limits)
                nursery.start_soon(lambda: push(stream, sink, subscription, cache=IpcCache()))
                await trio.sleep(0.01)
                if failure == "client-gone":
                    near.shutdown(socket.SHUT_RDWR)
                stream.publish(small_frame(1))
        assert subscription.sent == 0, "the push failed, and that ended the subscription"
        assert (subscription.dropped is not None) == (failure == "handler-hangs")
        del server  # the client's end, served until here
        client_end.close()
        daemon_end.close()

    async def main() -> collections.Counter[str]:
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector finds, to look at it
        try:
            for _ in range(20):
                await one_subscriber()
            await trio.sleep(0.1)
            gc.collect()
            return collections.Counter(
                f"{type(o).__module__}.{type(o).__qualname__}"
                for o in gc.garbage
                if type(o).__module__.startswith("capnp")
            )
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    assert aio.run(main) == collections.Counter(), "pycapnp objects in reference cycles"


REPLAY_TOML = CAMERA_TOML.replace("frame_fps = 10 ", "frame_fps = 20 ")


def test_replay_chunks_are_capped_whatever_the_client_asks(tmp_path: Path) -> None:
    daemon = start_labd(tmp_path, config=REPLAY_TOML)
    try:

        async def main() -> list[int]:
            async with connect(daemon.address) as lab:
                start = time.time()
                async with lab.subscribe("camera/frames") as frames:
                    seen = 0
                    async for _ in frames:  # enough recorded for two capped chunks
                        seen += 1
                        if seen * FRAME_BYTES > 1.5 * MAX_CHUNK_BYTES:
                            break
                link, cap = lab._link, lab._cap  # the wire call, to ask for 2**63 bytes
                opened = await link.call(lambda: cap.replay("camera/frames", start, time.time()))
                cursor = opened.cursor
                sizes = []
                for _ in range(2):
                    sizes.append(received_chunk(await link.call(lambda: cursor.next(2**63))).size)
                return sizes

        sizes = aio.run(main)
    finally:
        daemon.stop()
    assert all(0 < size <= MAX_CHUNK_BYTES for size in sizes), [s / 2**20 for s in sizes]


def test_rings_and_persisted_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data" / "lab"  # neither exists yet: the daemon makes them
    small_frames = CAMERA_TOML.replace(
        "frame_fps", "sensor_width = 256\nsensor_height = 256\nframe_fps"
    )
    config = f'[daemon]\ndata_dir = "{data}"\n' + small_frames
    daemon = start_labd(tmp_path / "daemon", config=config)
    try:

        async def main() -> Any:
            async with connect(daemon.address) as lab:
                async with lab.subscribe("camera/frames") as frames:
                    await frames.__anext__()
                await trio.sleep(0.5)
                return await lab.data_info()

        info = aio.run(main)
        rings = [Path(r.path) for r in info.rings]
        files = [p.file for p in info.persisted if p.file is not None]
        assert rings and files
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [*rings, *files]}
        assert set(modes.values()) == {0o600}, modes
        dirs = {
            rings[0].parent,
            data,
            *(f.parent for f in files),
            *(f.parent.parent for f in files),
        }
        dir_modes = {d: stat.S_IMODE(d.stat().st_mode) for d in dirs}
        assert set(dir_modes.values()) == {0o700}, dir_modes
    finally:
        daemon.stop()
