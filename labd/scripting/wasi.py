"""A minimal WASI preview 1 for guests whose toolchain insists on it (Go).

wasmtime's own WASI is used with nothing in it: no files, no environment, no network.
Two of its functions are replaced. ``fd_write`` sends stdout and stderr to the run's log,
line by line: wasmtime's custom-output hook calls back on one of its own Tokio threads,
where Trio cannot be reached (the lines were lost) and whose callbacks can outlive the
interpreter; ours runs in the guest thread like any host call. And ``poll_oneoff``
sleeps through the run's cancellable host call, because wasmtime's sleeps block the
thread where no epoch bump or Trio cancel can reach them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import trio
import wasmtime

from labd.scripting import abi
from labd.scripting.abi import LogLevel
from labd.scripting.control import RunControl, Stopped
from labd.scripting.host import GuestError, Host

_SUBSCRIPTION = struct.Struct(
    "<QB7xIxxxxQQH6x"
)  # 48 bytes: userdata, tag, clock{id, timeout, precision, flags}
_FD_SUBSCRIPTION = struct.Struct("<QB7xI")
_EVENT = struct.Struct("<QHB5xQH6x")  # 32 bytes: userdata, error, type, nbytes, flags
_IOVEC = struct.Struct("<II")  # buf, len
_MAX_IOVECS = 1024

# WASI errno values
_OK, _EBADF, _ECANCELED, _EFAULT, _EINVAL, _ENOTSUP = 0, 8, 11, 21, 28, 58
_ABSTIME = 1
_CLOCK_REALTIME = 0
_TAG_CLOCK = 0


class LineSplitter:
    """Turns the byte chunks a guest writes to a file descriptor into log lines."""

    def __init__(self, level: LogLevel, emit: Callable[[LogLevel, str], object]) -> None:
        self._level = level
        self._emit = emit
        self._pending = b""

    def write(self, chunk: bytes) -> None:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._emit(self._level, line.decode("utf-8", errors="replace"))
        if len(self._pending) > 8192:  # a line without end: flush what we have
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._emit(self._level, self._pending.decode("utf-8", errors="replace"))
            self._pending = b""


def configure(
    store: wasmtime.Store,
    linker: wasmtime.Linker,
    host: Host,
    control: RunControl,
    argv0: str,
    stdout: LineSplitter,
    stderr: LineSplitter,
) -> None:
    """Give ``store``/``linker`` the minimal WASI described in the module docstring."""
    config = wasmtime.WasiConfig()
    config.argv = [argv0]
    store.set_wasi(config)
    linker.define_wasi()
    linker.allow_shadowing = True
    i32 = wasmtime.ValType.i32()
    linker.define_func(
        abi.WASI_MODULE,
        "fd_write",
        wasmtime.FuncType([i32, i32, i32, i32], [i32]),
        _fd_write(host, {1: stdout, 2: stderr}),
        True,
    )
    linker.define_func(
        abi.WASI_MODULE,
        "poll_oneoff",
        wasmtime.FuncType([i32, i32, i32, i32], [i32]),
        _poll_oneoff(host, control),
        True,
    )


def _fd_write(host: Host, outputs: dict[int, LineSplitter]) -> Callable[..., int]:
    def fd_write(
        caller: wasmtime.Caller, fd: int, iovs_ptr: int, iovs_len: int, nwritten_ptr: int
    ) -> int:
        try:
            output = outputs.get(fd)
            if output is None:
                return _EBADF  # there are no files
            iovs_len &= 0xFFFF_FFFF
            if iovs_len > _MAX_IOVECS:
                return _EINVAL
            raw = host.read(caller, iovs_ptr, iovs_len * _IOVEC.size, "fd_write iovecs")
            written = 0
            for buf, length in _IOVEC.iter_unpack(raw):
                output.write(host.read(caller, buf, length, "fd_write data"))
                written += length
            host.write(caller, nwritten_ptr, struct.pack("<I", written), "fd_write nwritten")
            return _OK
        except GuestError:
            return _EFAULT
        except BaseException:  # never into wasmtime
            return _EINVAL

    return fd_write


def _poll_oneoff(host: Host, control: RunControl) -> Callable[..., int]:
    def poll_oneoff(
        caller: wasmtime.Caller, in_ptr: int, out_ptr: int, n: int, nevents_ptr: int
    ) -> int:
        try:
            return _poll(host, control, caller, in_ptr, out_ptr, n, nevents_ptr)
        except GuestError:
            return _EFAULT
        except (Stopped, trio.Cancelled):
            return _ECANCELED
        except BaseException:  # never into wasmtime
            return _EINVAL

    return poll_oneoff


def _poll(
    host: Host,
    control: RunControl,
    caller: wasmtime.Caller,
    in_ptr: int,
    out_ptr: int,
    n: int,
    nevents_ptr: int,
) -> int:
    n &= 0xFFFF_FFFF
    if n == 0 or n > 1024:
        return _EINVAL
    raw = host.read(caller, in_ptr, n * _SUBSCRIPTION.size, "poll_oneoff subscriptions")
    events: list[bytes] = []
    clocks: list[tuple[float, int]] = []  # (seconds from now, userdata)
    for i in range(n):
        chunk = raw[i * _SUBSCRIPTION.size : (i + 1) * _SUBSCRIPTION.size]
        userdata, tag, clock_id, timeout_ns, _precision, flags = _SUBSCRIPTION.unpack(chunk)
        if tag == _TAG_CLOCK:
            if flags & _ABSTIME:
                now_ns = time.time_ns() if clock_id == _CLOCK_REALTIME else time.monotonic_ns()
                timeout_ns = max(timeout_ns - now_ns, 0)
            clocks.append((timeout_ns / 1e9, userdata))
        else:
            # No file descriptor is ever ready here: there are no files.
            events.append(_EVENT.pack(userdata, _ENOTSUP, tag, 0, 0))
    if not events and clocks:
        delay = min(s for s, _ in clocks)
        control.call(trio.sleep, delay)
        events = [_EVENT.pack(u, _OK, _TAG_CLOCK, 0, 0) for s, u in clocks if s <= delay]
    host.write(caller, out_ptr, b"".join(events), "poll_oneoff events")
    host.write(caller, nevents_ptr, struct.pack("<I", len(events)), "poll_oneoff nevents")
    return _OK
