"""How many slots of what size a ring gets: time asked for, bounded by bytes allowed.

A ring is asked for in time ("the last 5 minutes") because that is what a user thinks
in, but it lives in RAM, so bytes decide. When the time asked for does not fit, the ring
keeps less time and says so (:attr:`RingPlan.note`); only when not even the minimum
number of slots fits is that an error, because then no reader could keep up at all.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from labd.rings.errors import RingSizeError
from labd.rings.layout import HEADER_WORDS, INDEX_WORDS, PAGE, WORD, page_round

MIN_SLOTS = 4  # a reader holding the newest batch survives a few more appends
SLOT_MARGIN = 2048  # IPC message headers, padding, dictionary message, end-of-stream
DEFAULT_MEMORY_SHARE = 0.25  # of MemAvailable, for all rings of a daemon together

# The daemon's default budget for its rings (no ``ring_memory_mb``): rings are pre-faulted
# shared memory, so the budget is RAM really taken. An eighth of the machine's leaves the
# rest to analysis, the GUI and a second daemon; the cap keeps a big server from pinning
# tens of GiB for history the persisted files hold anyway (docs/live-data.md, "How much
# history").
DAEMON_MEMORY_SHARE = 1 / 8  # of MemTotal
DAEMON_MEMORY_CAP = 4 << 30
DAEMON_AVAILABLE_SHARE = 0.5  # never more than this share of MemAvailable at start


def _meminfo(key: str, meminfo: Path) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{meminfo} has no {key} line; pass max_bytes explicitly")


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes the kernel estimates can be allocated without swapping (MemAvailable)."""
    return _meminfo("MemAvailable", meminfo)


def default_ring_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    """The rings' budget of a daemon whose config does not set ``ring_memory_mb``: an
    eighth of physical memory, at most 4 GiB and half of what is available now."""
    total = _meminfo("MemTotal", meminfo)
    budget = min(total * DAEMON_MEMORY_SHARE, DAEMON_MEMORY_CAP)
    return int(min(budget, mem_available(meminfo) * DAEMON_AVAILABLE_SHARE))


def shm_free(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class RingPlan:
    slot_count: int
    slot_size: int
    retention_s: float  # what the ring really holds at the planned rate
    note: str | None  # why the ring holds less than asked, for the log and status


def plan_ring(
    stream: str,
    *,
    retention_s: float,
    batches_per_second: float,
    expected_batch_bytes: int,
    schema_length: int,
    max_bytes: int,
) -> RingPlan:
    """Size a ring for ``retention_s`` of batches, within ``max_bytes``."""
    if retention_s <= 0 or batches_per_second <= 0 or expected_batch_bytes <= 0:
        raise ValueError(
            f"ring {stream!r}: retention_s, batches_per_second and expected_batch_bytes must "
            f"be positive (got {retention_s}, {batches_per_second}, {expected_batch_bytes})"
        )
    slot_size = page_round(expected_batch_bytes + schema_length + SLOT_MARGIN)
    per_slot = slot_size + INDEX_WORDS * WORD
    fixed = page_round(HEADER_WORDS * WORD + schema_length) + PAGE
    wanted = max(MIN_SLOTS, math.ceil(retention_s * batches_per_second))
    fitting = (max_bytes - fixed) // per_slot
    if fitting < MIN_SLOTS:
        raise RingSizeError(
            f"ring {stream!r} needs at least {fmt_bytes(fixed + MIN_SLOTS * per_slot)} "
            f"({MIN_SLOTS} slots of {fmt_bytes(slot_size)}) but only {fmt_bytes(max_bytes)} is "
            "left for it: raise the rings' max_bytes, free memory, or send smaller batches"
        )
    slot_count = min(wanted, fitting)
    note = None
    if slot_count < wanted:
        note = (
            f"ring {stream!r} keeps {slot_count / batches_per_second:.1f} s instead of the "
            f"{retention_s:g} s asked for: {wanted} batches of {fmt_bytes(slot_size)} need "
            f"{fmt_bytes(fixed + wanted * per_slot)}, {fmt_bytes(max_bytes)} is allowed "
            "(raise max_bytes or lower the rate; the persisted files still hold everything)"
        )
    return RingPlan(
        slot_count=slot_count,
        slot_size=slot_size,
        retention_s=slot_count / batches_per_second,
        note=note,
    )
