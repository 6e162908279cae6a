"""Shared-memory lanes: big batches reach a local subscriber without crossing the socket.

Through pycapnp an 8 MiB frame is copied six times: in the daemon by IPC serialisation,
into the (freshly zeroed) message, by pycapnp into ``bytes`` for the transport, and by the
kernel into the socket; in the client by the kernel and out of the message into
``bytes``. The daemon's CPU then caps pushed frames at ~0.3× a raw socket
(bench/README.md, "RPC"). A subscriber on the daemon's unix
socket is on the same machine and runs as the same user (the socket is 0600), so the push
can carry a *place* instead: the daemon writes the batch's IPC stream once into a slot of
a file in ``/dev/shm`` that only this subscription uses, the push names slot and length,
and the client copies it out of the mapping before it acknowledges the push. Two copies
in all, one on each side, like a raw socket.

A slot is written again only after its push was acknowledged, i.e. after the client's
copy: there is one slot per push that the subscriber's window and byte budget let be in
flight (:class:`labd.rpc.subscriptions.SubscriberLimits`), so a subscriber that stops
reading holds that many slots and no more. The file is created 0600
with a random name; the client unlinks it as soon as it has mapped it (so nothing is left
behind even if both processes are killed later) and the daemon unlinks it when the
subscription ends. Batches that do not fit a slot, and clients that cannot map the file
(say a unix socket forwarded from another machine), fall back to the bytes in the message.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections import deque
from pathlib import Path

import pyarrow as pa

from labd.contract.lanes import LANE_DIR, LANE_NAME

MIN_LANE_BATCH_BYTES = 256 * 1024
"""Smaller batches (readings) go inline: for them the message copies cost microseconds."""
SLOT_HEADROOM = 1.25
"""Slots are sized for the first big batch plus this margin (an ROI may grow a little)."""
SLOT_ALIGN = 2**20


class Lane:
    """The daemon's end: ``slots`` slots in one private shared-memory file."""

    def __init__(self, slots: int, slot_size: int) -> None:
        self.slot_size = slot_size
        self.path = LANE_DIR / f"labd-lane-{os.getpid()}-{secrets.token_hex(16)}"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # Reserve the pages now: writing into a sparse tmpfs file that finds the
            # filesystem full would kill the daemon with SIGBUS; this fails with ENOSPC.
            os.posix_fallocate(fd, 0, slots * slot_size)
        except BaseException:
            self.path.unlink()
            raise
        finally:
            os.close(fd)
        self._file = pa.memory_map(str(self.path), "r+")
        self._free = deque(range(slots))

    @classmethod
    def for_batch(cls, slots: int, batch_bytes: int) -> Lane:
        size = -(-int(batch_bytes * SLOT_HEADROOM) // SLOT_ALIGN) * SLOT_ALIGN
        return cls(slots, size)

    def take(self) -> int | None:
        """A free slot; None while every slot is in flight (batches smaller than the one
        the lane was sized for let more pushes in flight than it has slots)."""
        return self._free.popleft() if self._free else None

    def give_back(self, slot: int) -> None:
        self._free.append(slot)

    def write(self, slot: int, batch: pa.RecordBatch) -> tuple[int, int]:
        """Write ``batch`` as one IPC stream into ``slot``; returns (offset, length)."""
        offset = slot * self.slot_size
        self._file.seek(offset)
        with pa.ipc.new_stream(self._file, batch.schema) as writer:
            writer.write_batch(batch)
        return offset, self._file.tell() - offset

    def close(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def remove_stale_lanes() -> list[Path]:
    """Delete lanes of daemons that died before their client mapped them; returns them.

    Only a daemon killed in the moment between creating a lane and its client opening it
    leaves one behind; the next daemon cleans up.
    """
    removed = []
    for path in LANE_DIR.glob("labd-lane-*-*"):
        if not LANE_NAME.fullmatch(path.name):
            continue
        pid = int(path.name.split("-")[2])
        if path.stat().st_uid != os.getuid() or _alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # a PermissionError means alive (the pid was reused by another user)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def wants_lane(size: int, lane: Lane | None) -> bool:
    """Whether a batch of ``size`` IPC bytes should travel in a lane (``lane``, if open)."""
    if size < MIN_LANE_BATCH_BYTES:
        return False
    return lane is None or size <= lane.slot_size
