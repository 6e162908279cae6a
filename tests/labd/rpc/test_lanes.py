"""labd.rpc.lanes: batches written into shared memory by one end, copied out by the other."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from capabilities import Frame, Roi
from labd import records
from labd.contract.lanes import LANE_DIR, LaneReader
from labd.rpc.ipc import ipc_size
from labd.rpc.lanes import MIN_LANE_BATCH_BYTES, Lane, remove_stale_lanes, wants_lane


def frame_batch(side: int, value: int = 7) -> pa.RecordBatch:
    data = np.full((side, side), value, np.uint16)
    return records.frame_to_batch(Frame(data, 1.5, 0.01, Roi(0, 0, side, side), seq=3))


def test_a_slot_carries_the_same_ipc_bytes_as_the_message_would() -> None:
    batch = frame_batch(512)
    lane = Lane.for_batch(2, len(records.batch_to_ipc(batch)))
    reader = LaneReader()
    try:
        offset, length = lane.write(1, batch)
        assert offset == lane.slot_size
        copy = reader.read(str(lane.path), offset, length)
        assert copy == records.batch_to_ipc(batch)
        lane.write(1, frame_batch(512, value=9))  # the daemon reuses the slot...
        frame = records.frame_from_batch(records.batch_from_ipc(copy))
        assert int(frame.data[0, 0]) == 7  # ...the client's copy is its own
    finally:
        reader.close()
        lane.close()


def test_the_client_unlinks_the_file_once_mapped_and_the_daemon_tolerates_it() -> None:
    lane = Lane(slots=1, slot_size=2**20)
    reader = LaneReader()
    offset, length = lane.write(0, frame_batch(64))
    reader.read(str(lane.path), offset, length)
    assert not lane.path.exists(), "nothing may be left in /dev/shm if both processes die now"
    offset, length = lane.write(0, frame_batch(64, value=1))  # still mapped on both ends
    assert reader.read(str(lane.path), offset, length) == records.batch_to_ipc(frame_batch(64, 1))
    reader.close()
    lane.close()


def test_slots_are_handed_out_once_until_given_back() -> None:
    lane = Lane(slots=2, slot_size=2**20)
    try:
        taken = {lane.take(), lane.take()}
        assert taken == {0, 1}
        assert lane.take() is None  # all in flight: the push goes inline
        lane.give_back(1)
        assert lane.take() == 1
    finally:
        lane.close()
    assert not lane.path.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        f"/dev/shm/labd-lane-1-{'a' * 32}/../../../etc/passwd",
        "/dev/shm/labd-lane-1-not-hex",
    ],
)
def test_the_reader_maps_and_unlinks_only_labd_lanes(path: str) -> None:
    with pytest.raises(PermissionError, match="not a labd lane"):
        LaneReader().read(path, 0, 10)


def test_only_big_batches_that_fit_take_the_lane() -> None:
    small = ipc_size(records.readings_to_batch([]))
    assert wants_lane(small, None) is False
    big = ipc_size(frame_batch(512))  # 512 KiB of pixels
    assert big > MIN_LANE_BATCH_BYTES and wants_lane(big, None)
    lane = Lane(slots=1, slot_size=2**20)
    try:
        assert wants_lane(big, lane) is True
        assert wants_lane(ipc_size(frame_batch(1024)), lane) is False  # 2 MiB: goes inline
    finally:
        lane.close()


def test_lanes_of_dead_daemons_are_removed() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = LANE_DIR / f"labd-lane-{int(dead.stdout)}-{'0123456789abcdef' * 2}"
    stale.write_bytes(b"left behind")
    live = Lane(slots=1, slot_size=2**20)  # this process's: alive
    try:
        removed = remove_stale_lanes()
        assert stale in removed and not stale.exists()
        assert live.path.exists()
    finally:
        stale.unlink(missing_ok=True)
        live.close()
