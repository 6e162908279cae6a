"""The ``labd_v1`` imports: what a script can ask of the daemon.

Two rules shape every function here. First, a host import never raises into wasmtime:
wasmtime-py parks a host exception in one process-wide global, so with two scripts
running an exception could surface in the wrong one. Every failure becomes an ABI error
code plus a message for ``last_error``. Second, the guest's memory is untrusted: every
pointer and length is checked by hand before use (``Memory.read`` would silently clamp).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import trio
import wasmtime

from capabilities import (
    DeviceError,
    DeviceTimeout,
    Frame,
    InvalidRequest,
    Parameter,
    ParameterValue,
    PermissionDenied,
)
from labd import parameters
from labd.errors import (
    CallTimeout,
    CapabilityMissing,
    InstrumentBusy,
    InstrumentUnavailable,
    UnknownInstrument,
)
from labd.scripting import abi
from labd.scripting.abi import Errno, Kind, LogLevel
from labd.scripting.control import RunControl, Stopped
from labd.scripting.grants import Grants
from labd.scripting.limits import RunLimits

if TYPE_CHECKING:
    from labd.parameters import ParameterLog
    from labd.supervisor import InstrumentHandle

T = TypeVar("T")

Resolver = Callable[[str, type[Any]], object]
"""``(instrument name, capability Protocol) -> object implementing it``; raises
:class:`~labd.errors.UnknownInstrument` or :class:`~labd.errors.CapabilityMissing`.

For :class:`~capabilities.Configurable` it returns the instrument's handle instead (an
:class:`~labd.supervisor.InstrumentHandle`, or anything with its ``name``, ``channel``
and ``call``): parameters go through :mod:`labd.parameters`, which describes, converts,
checks and records a set on the handle, never on a bare driver (docs/scripting.md)."""

_U32 = 0xFFFF_FFFF
_MAX_NAME = 256
_MAX_PARAMETER_TEXT = 4096
_MAX_ROW_NAMES = 4096
"""Bytes of a row's packed column names (``"x,y,power"``)."""
_NUMERIC = ("float", "int", "bool")
"""Parameter kinds that cross as f64 (a bool as 1/0)."""
_F64 = struct.Struct("<d")
_VALTYPE = {"i": wasmtime.ValType.i32, "I": wasmtime.ValType.i64, "F": wasmtime.ValType.f64}


class GuestError(Exception):
    """A host import failed in a way the guest is told about: an ABI code and a message."""

    def __init__(self, errno: Errno, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def errno_for(exc: BaseException) -> Errno:
    """The ABI code for an error raised by an instrument, a resolver, or a stop."""
    table: list[tuple[type[BaseException], Errno]] = [
        (Stopped, Errno.E_CANCELLED),
        (trio.Cancelled, Errno.E_CANCELLED),
        (PermissionDenied, Errno.E_DENIED),
        (InvalidRequest, Errno.E_INVAL),
        (DeviceTimeout, Errno.E_TIMEOUT),
        (CallTimeout, Errno.E_TIMEOUT),
        (InstrumentBusy, Errno.E_BUSY),
        (UnknownInstrument, Errno.E_NOTFOUND),
        (CapabilityMissing, Errno.E_KIND),
        (InstrumentUnavailable, Errno.E_DEVICE),
        (DeviceError, Errno.E_DEVICE),
    ]
    for cls, errno in table:
        if isinstance(exc, cls):
            return errno
    return Errno.E_DEVICE


@dataclass(frozen=True)
class _Handle:
    instrument: str
    kind: Kind
    target: Any


class Host:
    """The imports of one run. Called only from that run's guest thread."""

    def __init__(
        self,
        *,
        control: RunControl,
        resolver: Resolver,
        grants: Grants,
        args: Mapping[str, str],
        limits: RunLimits,
        emit_log: Callable[[LogLevel, str], None],
        emit_result: Callable[[str, float], None],
        emit_row: Callable[[tuple[str, ...], tuple[float, ...]], int],
        by: str = "script",
        parameter_log: ParameterLog | None = None,
    ) -> None:
        self._control = control
        self._resolver = resolver
        self._grants = grants
        self._args = dict(args)
        self._limits = limits
        self._emit_log = emit_log
        self._emit_result = emit_result
        self._emit_row = emit_row
        self._row_names: tuple[bytes, tuple[str, ...]] = (b"", ())
        """The last row's packed names and their split: a scan repeats them every row."""
        self.held_for_writing: dict[str, None] = {}
        """Instruments the run opened with a capability that changes them, in order: those
        whose safe state applies if the run ends abnormally (docs/scripting.md)."""
        self._by = by
        """Who a parameter set is recorded as: ``script <name> run <id>``."""
        self._parameter_log = parameter_log
        self.memory: wasmtime.Memory | None = None
        self.last_error = ""
        self._handles: list[_Handle] = []
        self._frames: dict[int, Frame] = {}
        self._next_frame = 0
        self._results = 0
        self._log_tokens = float(limits.log_burst)
        self._log_refilled = time.monotonic()
        self.dropped_log_lines = 0

    # --- wiring -------------------------------------------------------------------------

    def define(self, linker: wasmtime.Linker, names: tuple[str, ...]) -> None:
        """Define the ``labd_v1`` imports ``names`` (those the module uses) on ``linker``."""
        for name in names:
            params, results = abi.IMPORTS[name]
            ty = wasmtime.FuncType(
                [_VALTYPE[c]() for c in params], [_VALTYPE[c]() for c in results]
            )
            linker.define_func(
                abi.IMPORT_MODULE, name, ty, self._guarded(name, getattr(self, f"_{name}")), True
            )

    def _guarded(self, name: str, fn: Callable[..., int]) -> Callable[..., int]:
        def call(caller: wasmtime.Caller, *args: Any) -> int:
            try:
                return fn(caller, *args)
            except GuestError as e:
                self.last_error = e.message
                return int(e.errno)
            except BaseException as e:  # never into wasmtime: see the module docstring
                self.last_error = f"{name}: {type(e).__name__}: {e}"
                return int(errno_for(e))

        return call

    # --- guest memory -------------------------------------------------------------------

    def _mem(self, caller: wasmtime.Caller) -> wasmtime.Memory:
        memory = self.memory or caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise GuestError(Errno.E_FAULT, "the script exports no memory named 'memory'")
        return memory

    def _span(self, caller: wasmtime.Caller, ptr: int, length: int, what: str) -> tuple[int, int]:
        ptr, length = ptr & _U32, length & _U32
        size = self._mem(caller).data_len(caller)
        if ptr + length > size:
            raise GuestError(
                Errno.E_FAULT,
                f"{what}: bytes {ptr}..{ptr + length} lie outside the script's {size}-byte memory",
            )
        return ptr, length

    def read(self, caller: wasmtime.Caller, ptr: int, length: int, what: str) -> bytes:
        ptr, length = self._span(caller, ptr, length, what)
        return bytes(self._mem(caller).read(caller, ptr, ptr + length)) if length else b""

    def write(self, caller: wasmtime.Caller, ptr: int, data: bytes, what: str) -> None:
        ptr, _ = self._span(caller, ptr, len(data), what)
        if data:
            self._mem(caller).write(caller, data, ptr)

    def _text(self, caller: wasmtime.Caller, ptr: int, length: int, what: str) -> str:
        self._span(caller, ptr, length, what)
        if length & _U32 > _MAX_NAME:
            raise GuestError(Errno.E_INVAL, f"{what} is longer than {_MAX_NAME} bytes")
        try:
            return self.read(caller, ptr, length, what).decode("utf-8")
        except UnicodeDecodeError:
            raise GuestError(Errno.E_INVAL, f"{what} is not valid UTF-8") from None

    def _out_struct(
        self, caller: wasmtime.Caller, ptr: int, cap: int, layout: struct.Struct, *values: Any
    ) -> int:
        cap &= _U32
        if cap < layout.size:  # every struct is still at v1: v1 is also the smallest size
            raise GuestError(
                Errno.E_TOOSMALL, f"buffer of {cap} bytes; this struct needs {layout.size}"
            )
        self.write(caller, ptr, layout.pack(*values), "output struct")
        return layout.size

    # --- instruments --------------------------------------------------------------------

    def _handle(self, handle: int, kind: Kind) -> _Handle:
        if not 0 <= handle < len(self._handles):
            raise GuestError(Errno.E_BADHANDLE, f"handle {handle} was not returned by cap_get")
        h = self._handles[handle]
        if h.kind is not kind:
            raise GuestError(
                Errno.E_KIND,
                f"handle {handle} is {h.instrument!r} as {h.kind.name}, not {kind.name}",
            )
        return h

    def _invoke(self, handle: int, kind: Kind, method: str, *args: Any) -> Any:
        h = self._handle(handle, kind)
        try:
            return self._control.call(getattr(h.target, method), *args)
        except Exception as e:
            raise GuestError(errno_for(e), f"{h.instrument}.{method}: {e}") from None

    def _cap_get(self, caller: wasmtime.Caller, name_ptr: int, name_len: int, kind: int) -> int:
        name = self._text(caller, name_ptr, name_len, "instrument name")
        try:
            k = Kind(kind)
        except ValueError:
            known = ", ".join(f"{k.value} {k.name}" for k in Kind)
            raise GuestError(
                Errno.E_INVAL, f"unknown capability kind {kind}; ABI v1 kinds: {known}"
            ) from None
        capability = k.protocol.__name__
        if not self._grants.allows(name, capability):
            raise GuestError(
                Errno.E_DENIED,
                f"not granted {capability} on {name!r} (granted:"
                f" {self._grants.describe()}); run it with --grant {name}:{capability}",
            )
        for i, h in enumerate(self._handles):
            if h.instrument == name and h.kind is k:
                return i
        try:
            target = self._control.call_sync(self._resolver, name, k.protocol)
        except Exception as e:
            raise GuestError(errno_for(e), str(e)) from None
        self._handles.append(_Handle(name, k, target))
        if k in abi.MUTATING_KINDS:
            self.held_for_writing[name] = None
        return len(self._handles) - 1

    def _movable_move_abs(self, caller: wasmtime.Caller, h: int, position: float) -> int:
        self._invoke(h, Kind.MOVABLE, "move_abs", position)
        return 0

    def _movable_move_rel(self, caller: wasmtime.Caller, h: int, delta: float) -> int:
        self._invoke(h, Kind.MOVABLE, "move_rel", delta)
        return 0

    def _movable_position(self, caller: wasmtime.Caller, h: int, out: int, cap: int) -> int:
        r = self._invoke(h, Kind.MOVABLE, "position")
        return self._out_struct(caller, out, cap, abi.READING_V1, r.value, r.timestamp)

    def _movable_wait_settled(
        self, caller: wasmtime.Caller, h: int, timeout_s: float, out: int, cap: int
    ) -> int:
        args = (timeout_s,) if timeout_s > 0 and math.isfinite(timeout_s) else ()
        r = self._invoke(h, Kind.MOVABLE, "wait_settled", *args)
        return self._out_struct(caller, out, cap, abi.READING_V1, r.value, r.timestamp)

    def _movable_limits(self, caller: wasmtime.Caller, h: int, out: int, cap: int) -> int:
        lim = self._invoke(h, Kind.MOVABLE, "limits")
        return self._out_struct(caller, out, cap, abi.LIMITS_V1, lim.low, lim.high)

    def _stoppable_stop(self, caller: wasmtime.Caller, h: int) -> int:
        self._invoke(h, Kind.STOPPABLE, "stop")
        return 0

    def _readable_read(self, caller: wasmtime.Caller, h: int, out: int, cap: int) -> int:
        r = self._invoke(h, Kind.READABLE, "read")
        return self._out_struct(caller, out, cap, abi.READING_V1, r.value, r.timestamp)

    def _frame_snap(self, caller: wasmtime.Caller, h: int) -> int:
        if len(self._frames) >= self._limits.max_frames_held:
            raise GuestError(
                Errno.E_LIMIT,
                f"the script holds {len(self._frames)} frames already; call frame_release"
                f" (at most {self._limits.max_frames_held} may be held)",
            )
        frame = self._invoke(h, Kind.FRAME_PRODUCER, "snap")
        fh = self._next_frame
        self._next_frame += 1
        self._frames[fh] = frame
        return fh

    def _frame(self, fh: int) -> Frame:
        try:
            return self._frames[fh]
        except KeyError:
            raise GuestError(
                Errno.E_BADHANDLE,
                f"frame handle {fh} was not returned by frame_snap or was released",
            ) from None

    def _frame_stats(self, caller: wasmtime.Caller, fh: int, out: int, cap: int) -> int:
        frame = self._frame(fh)
        data = frame.data
        height, width = data.shape[:2]
        lo, hi = float(data.min()), float(data.max())
        total = float(data.sum(dtype=np.float64))
        # Background-subtracted weights, so a uniform offset does not drag the centroid
        # to the middle of the frame.
        weight = total - lo * data.size
        if weight > 0:
            cols = data.sum(axis=0, dtype=np.float64) - lo * height
            rows = data.sum(axis=1, dtype=np.float64) - lo * width
            cx = float(cols @ np.arange(width)) / weight
            cy = float(rows @ np.arange(height)) / weight
        else:
            cx, cy = (width - 1) / 2, (height - 1) / 2
        return self._out_struct(
            caller, out, cap, abi.FRAME_STATS_V1,
            width, height, frame.seq, frame.timestamp, total, lo, hi, cx, cy,
        )  # fmt: skip

    def _frame_copy(self, caller: wasmtime.Caller, fh: int, buf: int, cap: int) -> int:
        raw = np.ascontiguousarray(self._frame(fh).data).tobytes()
        self.write(caller, buf, raw[: cap & _U32], "frame buffer")
        return len(raw)

    def _frame_release(self, caller: wasmtime.Caller, fh: int) -> int:
        self._frame(fh)
        del self._frames[fh]
        return 0

    def _exposure_get(self, caller: wasmtime.Caller, h: int, out: int) -> int:
        seconds = self._invoke(h, Kind.EXPOSURE_CONTROL, "exposure")
        self.write(caller, out, _F64.pack(seconds), "output f64")
        return 0

    def _exposure_set(self, caller: wasmtime.Caller, h: int, seconds: float) -> int:
        self._invoke(h, Kind.EXPOSURE_CONTROL, "set_exposure", seconds)
        return 0

    def _temperature_read(self, caller: wasmtime.Caller, h: int, out: int, cap: int) -> int:
        r = self._invoke(h, Kind.TEMPERATURE_SENSOR, "temperature")
        return self._out_struct(caller, out, cap, abi.READING_V1, r.value, r.timestamp)

    def _supply_set_voltage(self, caller: wasmtime.Caller, h: int, volts: float) -> int:
        self._invoke(h, Kind.VOLTAGE_SOURCE, "set_voltage", volts)
        return 0

    def _supply_set_current_limit(self, caller: wasmtime.Caller, h: int, amps: float) -> int:
        self._invoke(h, Kind.VOLTAGE_SOURCE, "set_current_limit", amps)
        return 0

    def _supply_readback(self, caller: wasmtime.Caller, h: int, out: int, cap: int) -> int:
        rb = self._invoke(h, Kind.VOLTAGE_SOURCE, "readback")
        return self._out_struct(
            caller, out, cap, abi.SUPPLY_READBACK_V1,
            rb.voltage.value, rb.current.value, rb.voltage.timestamp, int(rb.in_compliance), 0,
        )  # fmt: skip

    def _switch_set(self, caller: wasmtime.Caller, h: int, on: int) -> int:
        self._invoke(h, Kind.SWITCHABLE, "set_on", bool(on))
        return 0

    def _switch_get(self, caller: wasmtime.Caller, h: int) -> int:
        return 1 if self._invoke(h, Kind.SWITCHABLE, "is_on") else 0

    # --- Configurable -------------------------------------------------------------------
    # Every call goes through labd.parameters, as the RPC server's do: the same coercion,
    # checks and recording (docs/scripting.md, "Parameters"). One hop into Trio per call:
    # the description and the get/set run together there.

    def _on_parameter(
        self,
        caller: wasmtime.Caller,
        handle: int,
        name_ptr: int,
        name_len: int,
        what: str,
        afn: Callable[[InstrumentHandle, Parameter], Awaitable[T]],
    ) -> T:
        name = self._text(caller, name_ptr, name_len, "parameter name")
        h = self._handle(handle, Kind.CONFIGURABLE)
        target = cast("InstrumentHandle", h.target)  # see Resolver: a handle, not a proxy

        async def described() -> T:
            known = await parameters.describe(target)
            for parameter in known:
                if parameter.name == name:
                    return await afn(target, parameter)
            names = ", ".join(p.name for p in known) or "none"
            raise GuestError(
                Errno.E_NOTFOUND,
                f"{what}: {h.instrument} has no parameter {name!r} (its parameters: {names})",
            )

        try:
            return self._control.call(described)
        except GuestError:
            raise
        except Exception as e:
            raise GuestError(errno_for(e), f"{what} on {h.instrument}: {e}") from None

    @staticmethod
    def _numeric(parameter: Parameter, what: str, instead: str) -> None:
        if parameter.kind not in _NUMERIC:
            raise GuestError(
                Errno.E_KIND,
                f"{what}: {parameter.name} is a {parameter.kind} parameter, not a number;"
                f" use {instead}",
            )

    async def _set(self, target: InstrumentHandle, parameter: Parameter, value: object) -> None:
        await parameters.set_value(
            target, parameter.name, value, by=self._by, log_to=self._parameter_log
        )

    def _param_get_f64(
        self, caller: wasmtime.Caller, h: int, name_ptr: int, name_len: int, out: int
    ) -> int:
        self._span(caller, out, _F64.size, "output f64")  # before the instrument is asked

        async def get(target: InstrumentHandle, parameter: Parameter) -> ParameterValue:
            self._numeric(parameter, "param_get_f64", "param_get_text")
            return await parameters.get_value(target, parameter.name)

        value = self._on_parameter(caller, h, name_ptr, name_len, "param_get_f64", get)
        self.write(caller, out, _F64.pack(float(value)), "output f64")
        return 0

    def _param_set_f64(
        self, caller: wasmtime.Caller, h: int, name_ptr: int, name_len: int, value: float
    ) -> int:
        async def put(target: InstrumentHandle, parameter: Parameter) -> None:
            self._numeric(parameter, "param_set_f64", "param_set_text")
            given: object = value
            if parameter.kind == "bool":
                if math.isnan(value):
                    raise GuestError(
                        Errno.E_INVAL,
                        f"param_set_f64: {parameter.name} is a bool: give 1 (on) or 0 (off)",
                    )
                given = value != 0
            await self._set(target, parameter, given)

        self._on_parameter(caller, h, name_ptr, name_len, "param_set_f64", put)
        return 0

    def _param_get_text(
        self, caller: wasmtime.Caller, h: int, name_ptr: int, name_len: int, buf: int, cap: int
    ) -> int:
        self._span(caller, buf, cap, "parameter text buffer")

        async def get(target: InstrumentHandle, parameter: Parameter) -> str:
            # The one text form (a number with its unit), so what is read sets back as is.
            return parameter.show(await parameters.get_value(target, parameter.name))

        data = self._on_parameter(caller, h, name_ptr, name_len, "param_get_text", get).encode()
        self.write(caller, buf, data[: cap & _U32], "parameter text buffer")
        return len(data)

    def _param_set_text(
        self,
        caller: wasmtime.Caller,
        h: int,
        name_ptr: int,
        name_len: int,
        val_ptr: int,
        val_len: int,
    ) -> int:
        self._span(caller, val_ptr, val_len, "parameter value")
        if val_len & _U32 > _MAX_PARAMETER_TEXT:
            raise GuestError(
                Errno.E_INVAL, f"parameter value is longer than {_MAX_PARAMETER_TEXT} bytes"
            )
        try:
            text = self.read(caller, val_ptr, val_len, "parameter value").decode("utf-8")
        except UnicodeDecodeError:
            raise GuestError(Errno.E_INVAL, "parameter value is not valid UTF-8") from None

        async def put(target: InstrumentHandle, parameter: Parameter) -> None:
            await self._set(target, parameter, text)

        self._on_parameter(caller, h, name_ptr, name_len, "param_set_text", put)
        return 0

    # --- general ------------------------------------------------------------------------

    def _abi_version(self, caller: wasmtime.Caller) -> int:
        return abi.ABI_VERSION

    def _last_error(self, caller: wasmtime.Caller, buf: int, cap: int) -> int:
        message = self.last_error.encode()
        # Write without going through the guard's error path: a failing last_error call
        # must not replace the message it was asked for.
        try:
            self.write(caller, buf, message[: cap & _U32], "last_error buffer")
        except GuestError as e:
            return int(e.errno)
        return len(message)

    def _log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> int:
        self._span(caller, ptr, length, "log text")
        try:
            lvl = LogLevel(level)
        except ValueError:
            raise GuestError(Errno.E_INVAL, f"log level {level} is not 0..3") from None
        limit = self._limits.log_line_bytes
        raw = self.read(caller, ptr, min(length & _U32, limit), "log text")
        text = raw.decode("utf-8", errors="replace")
        if length & _U32 > limit:
            text += f" …[cut: {length & _U32} bytes, at most {limit} are kept]"
        return 0 if self.log_line(lvl, text) else int(Errno.E_LIMIT)

    def log_line(self, level: LogLevel, text: str) -> bool:
        """Log one line from the guest, subject to the run's rate limit; False if dropped."""
        if not self._take_log_token():
            return False
        limit = self._limits.log_line_bytes
        if len(text) > limit + 64:  # lines from WASI output arrive uncut
            text = text[:limit] + f" …[cut: {len(text)} characters, at most {limit} are kept]"
        self._emit_log(level, text)
        return True

    def _take_log_token(self) -> bool:
        """Token bucket: ``log_burst`` lines at once, ``log_lines_per_s`` sustained."""
        t = time.monotonic()
        self._log_tokens = min(
            self._log_tokens + (t - self._log_refilled) * self._limits.log_lines_per_s,
            float(self._limits.log_burst),
        )
        self._log_refilled = t
        if self._log_tokens < 1:
            self.dropped_log_lines += 1
            return False
        self._log_tokens -= 1
        return True

    def _time_us(self, caller: wasmtime.Caller) -> int:
        return time.time_ns() // 1000

    def _sleep_ms(self, caller: wasmtime.Caller, ms: int) -> int:
        if ms < 0:
            raise GuestError(Errno.E_INVAL, f"sleep_ms({ms}): the time must be >= 0")
        try:
            self._control.call(trio.sleep, ms / 1000)
        except (Stopped, trio.Cancelled):
            raise GuestError(
                Errno.E_CANCELLED, "sleep_ms interrupted: the run is stopping"
            ) from None
        return 0

    def _checkpoint(self, caller: wasmtime.Caller) -> int:
        try:
            self._control.checkpoint()
        except (Stopped, trio.Cancelled):
            raise GuestError(Errno.E_CANCELLED, "the run is stopping: return from run()") from None
        return 0

    def _result_f64(self, caller: wasmtime.Caller, ptr: int, length: int, value: float) -> int:
        name = self._text(caller, ptr, length, "result name")
        if not name:
            raise GuestError(Errno.E_INVAL, "result name is empty")
        if self._results >= self._limits.max_results:
            raise GuestError(Errno.E_LIMIT, f"more than {self._limits.max_results} results")
        self._results += 1
        self._emit_result(name, value)
        return 0

    def _arg(self, caller: wasmtime.Caller, ptr: int, length: int) -> tuple[str, str]:
        name = self._text(caller, ptr, length, "argument name")
        if name not in self._args:
            given = ", ".join(sorted(self._args)) or "none"
            raise GuestError(
                Errno.E_NOTFOUND,
                f"no argument {name!r} was given (given: {given}); pass --arg {name}=VALUE",
            )
        return name, self._args[name]

    def _arg_f64(self, caller: wasmtime.Caller, ptr: int, length: int, out: int) -> int:
        name, text = self._arg(caller, ptr, length)
        try:
            value = float(text)
        except ValueError:
            raise GuestError(Errno.E_INVAL, f"argument {name}={text!r} is not a number") from None
        self.write(caller, out, _F64.pack(value), "output f64")
        return 0

    def _arg_str(self, caller: wasmtime.Caller, ptr: int, length: int, buf: int, cap: int) -> int:
        _, text = self._arg(caller, ptr, length)
        data = text.encode()
        self.write(caller, buf, data[: cap & _U32], "argument buffer")
        return len(data)

    def _result_row(
        self, caller: wasmtime.Caller, names_ptr: int, names_len: int, values: int, count: int
    ) -> int:
        if names_len & _U32 > _MAX_ROW_NAMES:
            raise GuestError(Errno.E_INVAL, f"row names are longer than {_MAX_ROW_NAMES} bytes")
        packed = self.read(caller, names_ptr, names_len, "row names")
        if packed != self._row_names[0]:
            self._row_names = (packed, _split_names(packed))
        columns = self._row_names[1]
        if count & _U32 != len(columns):
            raise GuestError(
                Errno.E_INVAL,
                f"result_row: {count} values for {len(columns)} names ({','.join(columns)})",
            )
        raw = self.read(caller, values, len(columns) * _F64.size, "row values")
        if self._results + len(columns) > self._limits.max_results:
            raise GuestError(Errno.E_LIMIT, f"more than {self._limits.max_results} results")
        row = struct.unpack(f"<{len(columns)}d", raw)
        try:
            number = self._emit_row(columns, row)
        except ValueError as e:  # results.ColumnsMismatch
            raise GuestError(Errno.E_INVAL, f"result_row: {e}") from None
        self._results += len(columns)
        return number


def _split_names(packed: bytes) -> tuple[str, ...]:
    """``b"x,y,power"`` -> the column names; each non-empty, unique, valid UTF-8."""
    try:
        names = tuple(n.strip() for n in packed.decode("utf-8").split(","))
    except UnicodeDecodeError:
        raise GuestError(Errno.E_INVAL, "row names are not valid UTF-8") from None
    if not all(names):
        raise GuestError(Errno.E_INVAL, f'row names {packed.decode()!r}: write them as "x,y,power"')
    if len(set(names)) != len(names):
        raise GuestError(Errno.E_INVAL, f"row names {','.join(names)} repeat a name")
    return names
