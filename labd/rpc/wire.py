"""What crosses the wire besides method calls: errors and value structs.

Errors: pycapnp sends a server exception to the client as the text of its whole Python
traceback, which leaks server paths and is useless to a program. Every server method
therefore funnels exceptions through :func:`to_wire_error`, which produces a
:class:`WireError` whose text is exactly ``labd:<code>: <message>`` and which carries no
traceback; the client finds that marker in the remote exception and raises the matching
class again (:func:`from_remote`).

Values: the structs of ``labd.capnp`` to and from :mod:`capabilities.values`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from capabilities import CoolerState, FrameFormat, Limits, Reading, Roi, SupplyReadback
from capabilities.errors import CapabilityError
from labd.errors import ERROR_CLASSES, LabdError, error_code

log = logging.getLogger("labd.rpc")
P = ParamSpec("P")
R = TypeVar("R")

_MARKER = re.compile(r"labd:([a-z0-9:-]+): (.*)", re.DOTALL)

SCRIPT_FAILED = "script-failed"
"""Wire code prefix of a failed script run: ``script-failed:<ScriptFailed.code>``."""
SCRIPT_ERROR_CODES = ("script-error", "script-invalid", "unknown-script")


class WireError(Exception):
    """An error in its wire form: ``labd:<code>: <message>``, without a traceback.

    pycapnp formats ``exc.__traceback__``; this class always reports ``None`` there so the
    remote side receives one short line. ``__module__`` is ``builtins`` so the line is not
    prefixed with a module path either.
    """

    __module__ = "builtins"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"labd:{code}: {message}")
        self.code = code

    @property
    def __traceback__(self) -> None:
        return None

    @__traceback__.setter
    def __traceback__(self, _value: object) -> None:
        pass


def to_wire_error(exc: BaseException) -> WireError:
    """The wire form of ``exc``; unexpected errors are logged here with their traceback."""
    code = error_code(exc)
    if code == "internal":
        log.error("internal error in an RPC call", exc_info=exc)
        return WireError(code, f"internal daemon error ({type(exc).__name__}); see the daemon log")
    return WireError(code, str(exc).strip() or type(exc).__name__)


def parse_error(text: str) -> tuple[str, str] | None:
    """(code, message) if ``text`` carries a labd error marker."""
    match = _MARKER.search(text)
    if match is None:
        return None
    return match.group(1), match.group(2).strip()


def error_from_code(code: str, message: str) -> Exception:
    """An instance of the exception class registered for ``code`` (LabdError if unknown)."""
    if code.startswith(SCRIPT_FAILED + ":") or code in SCRIPT_ERROR_CODES:
        return _script_error(code, message)
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return LabdError(f"{message} [{code}]")
    if issubclass(cls, LabdError | CapabilityError):
        return cls(message)
    return LabdError(message)


def _script_error(code: str, message: str) -> Exception:
    # Imported here, not at the top: labd.scripting loads wasmtime, which a client that
    # never runs a script should not pay for.
    from labd.scripting import ScriptError, ScriptFailed, ScriptInvalid, UnknownScript

    if code.startswith(SCRIPT_FAILED + ":"):
        return ScriptFailed(code.partition(":")[2], message)
    classes: dict[str, type[ScriptError]] = {
        cls.code: cls for cls in (ScriptError, ScriptInvalid, UnknownScript)
    }
    return classes[code](message)


# ---------------------------------------------------------------- values


def reading_to(struct: Any, reading: Reading) -> None:
    struct.value = reading.value
    struct.unit = reading.unit
    struct.timestamp = reading.timestamp


def reading_from(struct: Any) -> Reading:
    return Reading(value=struct.value, unit=struct.unit, timestamp=struct.timestamp)


def limits_to(struct: Any, limits: Limits) -> None:
    struct.low = limits.low
    struct.high = limits.high
    struct.unit = limits.unit


def limits_from(struct: Any) -> Limits:
    return Limits(low=struct.low, high=struct.high, unit=struct.unit)


def roi_to(struct: Any, roi: Roi) -> None:
    struct.x, struct.y, struct.width, struct.height = roi.x, roi.y, roi.width, roi.height


def roi_from(struct: Any) -> Roi:
    return Roi(x=struct.x, y=struct.y, width=struct.width, height=struct.height)


def frame_format_to(struct: Any, fmt: FrameFormat) -> None:
    struct.height, struct.width, struct.dtype = fmt.height, fmt.width, fmt.dtype


def frame_format_from(struct: Any) -> FrameFormat:
    return FrameFormat(height=struct.height, width=struct.width, dtype=struct.dtype)


def cooler_state_to(state: CoolerState) -> str:
    return state.value


def cooler_state_from(wire: Any) -> CoolerState:
    return CoolerState(str(wire))


def readback_to(struct: Any, readback: SupplyReadback) -> None:
    reading_to(struct.voltage, readback.voltage)
    reading_to(struct.current, readback.current)
    struct.inCompliance = readback.in_compliance


def readback_from(struct: Any) -> SupplyReadback:
    return SupplyReadback(
        voltage=reading_from(struct.voltage),
        current=reading_from(struct.current),
        in_compliance=struct.inCompliance,
    )


def wire_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate a server method so that whatever it raises leaves as a :class:`WireError`."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (asyncio.CancelledError, WireError):
            raise
        except Exception as exc:
            raise to_wire_error(exc) from None

    return wrapper
