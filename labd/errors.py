"""The daemon's own errors, each with a short stable ``code`` that crosses the wire.

Capability errors (:mod:`capabilities.errors`) pass through the daemon unchanged; the
errors here describe the daemon's view of an instrument: unknown, lacking a capability,
faulted, busy, too slow. :func:`error_code` maps any exception to the code a client sees,
so that a Python traceback never has to cross the wire.
"""

from __future__ import annotations

from capabilities import errors as cap_errors


class LabdError(Exception):
    """Base class of the daemon's errors."""

    code = "labd-error"


class UnknownInstrument(LabdError, LookupError):
    """No instrument has that name; the message lists the ones there are."""

    code = "unknown-instrument"


class CapabilityMissing(LabdError):
    """The instrument does not have the capability (or method) asked for."""

    code = "capability-missing"


class InstrumentUnavailable(LabdError):
    """The instrument is starting, faulted, restarting or stopped."""

    code = "unavailable"

    def __init__(self, message: str, state: str = "faulted", reason: str | None = None) -> None:
        super().__init__(message)
        self.state = state
        self.reason = reason


class InstrumentBusy(LabdError):
    """The call could not start within its timeout because other calls held the instrument."""

    code = "busy"


class CallTimeout(LabdError):
    """The driver did not answer within its call timeout (plus the caller's own timeout,
    for a bounded wait; not counting time the daemon itself was stalled). The instrument is
    faulted and restarted. A caller's own wait that ran out is a WaitTimeout instead."""

    code = "timeout"


class UnknownStream(LabdError, LookupError):
    """No stream has that name; the message lists the ones there are."""

    code = "unknown-stream"


class ConfigError(LabdError):
    """A lab config is wrong. The message names the file, the key (and line) and a fix."""

    code = "config-error"


_CAPABILITY_CODES: list[tuple[type[BaseException], str]] = [
    (cap_errors.OutOfRange, "out-of-range"),
    (cap_errors.PermissionDenied, "permission-denied"),
    (cap_errors.InvalidRequest, "invalid-request"),
    (cap_errors.WaitTimeout, "wait-timeout"),
    (cap_errors.MeasurementInvalid, "measurement-invalid"),
    (cap_errors.DeviceTimeout, "device-timeout"),
    (cap_errors.DeviceDisconnected, "device-disconnected"),
    (cap_errors.DeviceError, "device-error"),
]


def error_code(exc: BaseException) -> str:
    """The short code of ``exc`` as a client sees it; ``"internal"`` for anything unexpected."""
    if isinstance(exc, LabdError):
        return exc.code
    for cls, code in _CAPABILITY_CODES:
        if isinstance(exc, cls):
            return code
    return "internal"


#: code -> exception class, for clients turning a code back into an exception.
ERROR_CLASSES: dict[str, type[Exception]] = {
    cls.code: cls
    for cls in (
        LabdError,
        UnknownInstrument,
        CapabilityMissing,
        InstrumentUnavailable,
        InstrumentBusy,
        CallTimeout,
        ConfigError,
        UnknownStream,
    )
} | {code: cls for cls, code in _CAPABILITY_CODES}  # type: ignore[misc]
