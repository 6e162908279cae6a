"""labd.rpc.subscriptions against a real daemon: rate limits, and slow subscribers harm nobody."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from labd import aio
from labd.client import BlockingLab, connect, connect_blocking
from labd.client.lab import Subscription
from labd.contract.lanes import LaneReader
from tests.labd.client.test_lab import free_port
from tests.labd.rpc.conftest import REPO, LabdProcess, start_labd

TCP_PORT = free_port()
FAST_CAMERA_TOML = """
[instruments.camera]
driver = "sim.camera"
sensor_width = 384      # 288 KiB frames: big enough for a shared-memory lane
sensor_height = 384
exposure = 0.001
frame_fps = 40
"""


@pytest.fixture(scope="module")
def camera_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(
        tmp_path_factory.mktemp("labd"), "--listen", f"127.0.0.1:{TCP_PORT}",
        config=FAST_CAMERA_TOML,
    )  # fmt: skip
    yield daemon
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def last_seq(lab: BlockingLab, stream: str = "camera/frames") -> int:
    return {s.name: s.last_seq for s in lab.streams()}[stream]


def stream_rate(lab: BlockingLab, seconds: float = 1.0) -> float:
    """Batches/s the camera stream publishes, from the daemon's own sequence numbers."""
    first = last_seq(lab)
    time.sleep(seconds)
    return (last_seq(lab) - first) / seconds


def test_rate_limited_subscription_delivers_at_most_the_rate(camera_daemon: LabdProcess) -> None:
    with connect_blocking(camera_daemon.address) as lab:
        published = stream_rate(lab)
        assert published > 15, f"the sim camera should publish ~40 frames/s, not {published:.1f}"
        with lab.subscribe("camera/frames", max_rate=5) as frames:
            frames.next(timeout=5)  # the first push comes at once; the rate applies from here
            start = time.monotonic()
            arrivals = []
            while time.monotonic() - start < 2.0:
                arrivals.append(frames.next(timeout=5).seq)
            elapsed = time.monotonic() - start
            sent, skipped = frames.stats()
        assert len(arrivals) <= 5 * elapsed + 1, f"{len(arrivals)} pushes in {elapsed:.2f} s"
        assert len(arrivals) >= 5 * elapsed * 0.6, "the limit should not starve the subscriber"
        assert skipped > 0, "a 5/s subscriber of a faster stream skips batches"
        assert sent >= len(arrivals)


SLOW_SUBSCRIBER = """
import sys, time
from labd import aio
from labd.client import BlockingLab, connect, connect_blocking
from labd.client.lab import Subscription
from labd.contract.lanes import LaneReader
lab = connect_blocking(sys.argv[1])
for message in lab.subscribe("camera/frames", window=1):
    print(message.seq, flush=True)
    time.sleep(0.5)  # a consumer far slower than the stream, blocking its own thread
"""


def test_slow_subscriber_does_not_slow_a_fast_one(camera_daemon: LabdProcess) -> None:
    slow = subprocess.Popen(
        [sys.executable, "-c", SLOW_SUBSCRIBER, camera_daemon.address],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert slow.stdout is not None
    try:
        slow_seqs = [int(slow.stdout.readline())]  # the slow one is subscribed and stalling
        with (
            connect_blocking(camera_daemon.address) as lab,
            lab.subscribe("camera/frames", window=4) as frames,
        ):
            fast_seqs = [frames.next(timeout=5).seq]
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                fast_seqs.append(frames.next(timeout=5).seq)
            newest = last_seq(lab)
        slow_seqs += [int(line) for line in _lines_until_exit(slow)]
    finally:
        slow.kill()
        slow.wait()
    fast_gaps = sum(b - a - 1 for a, b in itertools.pairwise(fast_seqs))
    assert fast_gaps <= len(fast_seqs) // 10, f"the fast subscriber skipped {fast_gaps} frames"
    assert newest - fast_seqs[-1] <= 3, "the fast subscriber kept up with the stream"
    assert len(fast_seqs) >= 10 * len(slow_seqs)
    # Latest-wins: the slow subscriber skips to newer frames instead of queueing old ones;
    # with window=1 it is never handed two stale frames in a row.
    steps = [b - a for a, b in itertools.pairwise(slow_seqs)]
    assert sum(steps) >= 5 * len(steps), slow_seqs
    assert not any(a == b == 1 for a, b in itertools.pairwise(steps)), slow_seqs


def _lines_until_exit(proc: subprocess.Popen[str]) -> list[str]:
    proc.kill()
    assert proc.stdout is not None
    return [line for line in proc.stdout.read().splitlines() if line.strip()]


def lane_mappings(daemon: LabdProcess) -> list[str]:
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text().splitlines()
    return [line for line in maps if "labd-lane-" in line]


def test_local_subscriber_gets_the_same_frames_through_shared_memory(
    camera_daemon: LabdProcess,
) -> None:
    async def main() -> tuple[dict[int, bytes], dict[int, bytes], int]:
        async with (
            connect(camera_daemon.address) as lab,
            lab.subscribe("camera/frames", shared_memory=True, window=2) as lane,
            lab.subscribe("camera/frames", shared_memory=False, window=2) as inline,
        ):
            got: dict[str, dict[int, bytes]] = {"lane": {}, "inline": {}}

            async def take(name: str, sub: Subscription) -> None:
                async for message in sub:
                    got[name][message.seq] = message.frame().data.tobytes()
                    if len(got[name]) == 15:
                        return

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(take, "lane", lane)
                    nursery.start_soon(take, "inline", inline)
            mapped = len(lane_mappings(camera_daemon))
        return got["lane"], got["inline"], mapped

    lane, inline, mapped_during = aio.run(main)
    assert mapped_during == 1, "the lane subscription maps one shared-memory file"
    common = set(lane) & set(inline)
    assert common, (sorted(lane), sorted(inline))
    assert all(lane[seq] == inline[seq] for seq in common)
    deadline = time.monotonic() + 5
    while lane_mappings(camera_daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lane_mappings(camera_daemon), "the lane is unmapped when the subscription ends"
    assert not list(Path("/dev/shm").glob(f"labd-lane-{camera_daemon.proc.pid}-*"))


def test_client_that_cannot_map_the_lane_gets_frames_inline(
    camera_daemon: LabdProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_map(self: LaneReader, path: str, offset: int, length: int) -> bytes:
        raise PermissionError(f"{path}: on another machine")

    monkeypatch.setattr(LaneReader, "read", cannot_map)

    async def main() -> list[int]:
        async with (
            connect(camera_daemon.address) as lab,
            lab.subscribe("camera/frames", shared_memory=True) as frames,
        ):
            shapes = []
            with trio.fail_after(10):
                async for message in frames:
                    shapes.append(message.frame().data.shape[0])
                    if len(shapes) == 5:
                        return shapes
        raise AssertionError("the subscription ended")

    assert aio.run(main) == [384] * 5
    assert "cannot map" in camera_daemon.log.read_text()


def test_tcp_client_gets_frames_inline_even_if_it_asks_for_shared_memory(
    camera_daemon: LabdProcess,
) -> None:
    async def main() -> tuple[int, int]:
        address = f"127.0.0.1:{TCP_PORT}"
        async with (
            connect(address, token=camera_daemon.token) as lab,
            lab.subscribe("camera/frames", shared_memory=True) as frames,
        ):
            with trio.fail_after(10):
                message = await frames.__anext__()
            return message.frame().data.shape[0], len(lane_mappings(camera_daemon))

    side, lanes = aio.run(main)
    assert side == 384
    assert lanes == 0, "a lane only for clients on the unix socket"
