"""Sleep until another process changes a 32-bit word in shared memory (Linux futex).

Readers of a ring wait on the low half of the header's ``write_seq`` word and the writer
wakes them after each batch, so a waiting reader costs no CPU and sees a new batch
tens of microseconds after it is written. The futex is *shared* (no FUTEX_PRIVATE_FLAG):
the kernel keys it by file and offset, so it works between processes that map the same
ring file at different addresses.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}
_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_WAKE_ALL = 0x7FFFFFFF


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


try:
    _NR = _SYS_FUTEX[platform.machine()]
except KeyError:
    raise ImportError(
        f"labd rings use the Linux futex syscall; its number on {platform.machine()!r} "
        "is not known here (add it to labd/rings/futex.py)"
    ) from None

_libc = ctypes.CDLL(None, use_errno=True)  # CDLL releases the GIL during the call
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def futex_wait(address: int, expected: int, timeout_s: float) -> bool:
    """Sleep while the u32 at ``address`` equals ``expected``, at most ``timeout_s``.

    Returns False on timeout, True otherwise (woken, value already different, or a
    signal: callers re-check the word in every case, so spurious wake-ups are harmless).
    """
    timeout_s = max(timeout_s, 0.0)
    ts = _Timespec(int(timeout_s), int((timeout_s % 1.0) * 1e9))
    rc = _syscall(
        ctypes.c_long(_NR),
        ctypes.c_void_p(address),
        ctypes.c_int(_FUTEX_WAIT),
        ctypes.c_uint32(expected & 0xFFFFFFFF),
        ctypes.byref(ts),
        None,
        ctypes.c_int(0),
    )
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ETIMEDOUT:
        return False
    if err in (errno.EAGAIN, errno.EINTR):
        return True
    raise OSError(err, f"futex wait failed: {os.strerror(err)}")


def futex_wake(address: int) -> None:
    """Wake every process sleeping on the u32 at ``address``."""
    _syscall(
        ctypes.c_long(_NR),
        ctypes.c_void_p(address),
        ctypes.c_int(_FUTEX_WAKE),
        ctypes.c_int(_WAKE_ALL),
        None,
        None,
        ctypes.c_int(0),
    )
