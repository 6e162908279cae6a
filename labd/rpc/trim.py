"""Give memory that big buffers left free back to the system, soon after they are freed.

``labd.aio.tune_malloc`` raises glibc's trim threshold so that frame-sized messages reuse
heap memory instead of being mapped and faulted in afresh; the price is that glibc never
shrinks the heap by itself (docs/architecture.md, measured facts). After a subscriber of
big batches or a replay ends, what its messages used stays in the daemon's resident memory
until :func:`release_soon` has ``malloc_trim(0)`` return it.

The trim runs in a worker thread, at most once per :data:`DELAY_S`: the first release
asked for schedules it, and it covers every buffer freed until it runs (several
subscribers leaving together cost one trim). It takes glibc's arena locks for a few
milliseconds and touches no Python object, so the event loop never waits for it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

DELAY_S = 1.0
"""A release asked for runs this much later, together with every other one asked meanwhile."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None  # glibc only
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_trim = _malloc_trim()
_lock = threading.Lock()
_pending: threading.Timer | None = None


def release_soon() -> None:
    """Have glibc return the free parts of its heap to the system within :data:`DELAY_S`."""
    global _pending
    if _trim is None:
        return
    with _lock:
        if _pending is not None:
            return
        _pending = threading.Timer(DELAY_S, _release)
        _pending.name = "labd-malloc-trim"
        _pending.daemon = True
        _pending.start()


def _release() -> None:
    global _pending
    with _lock:
        _pending = None
    assert _trim is not None
    _trim(0)
