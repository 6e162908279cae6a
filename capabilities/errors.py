"""The errors a capability may raise, split by whose fault they are.

The supervisor needs to tell a bad *request* (the caller asked for something the
instrument refuses: out of range, wrong state) from a bad *instrument* (it stopped
answering, answered garbage, disconnected). The first is reported to the caller and the
instrument stays ready; the second faults the instrument and triggers a restart.
"""


class CapabilityError(Exception):
    """Base class of every error a capability raises on purpose."""


class InvalidRequest(CapabilityError):
    """The request was refused; the instrument is fine. Never faults the instrument."""


class OutOfRange(InvalidRequest):
    """A value is outside the limits the instrument (or a restricted capability) accepts."""


class PermissionDenied(InvalidRequest):
    """The capability held does not allow this (read-only, expired, revoked)."""


class WaitTimeout(CapabilityError):
    """A wait the *caller* bounded (``wait_settled(timeout=...)``) ran out. The instrument is
    fine; the caller asked for less time than the physics needed. Never faults it."""


class MeasurementInvalid(CapabilityError):
    """The instrument answered, but says the value is meaningless (sensor open, overrange).

    Neither the caller's fault nor a broken link: the instrument stays ready (its other
    inputs keep working) and the caller learns there is no valid value right now."""


class DeviceError(CapabilityError):
    """The instrument misbehaved: no answer, garbage, disconnect. Faults the instrument."""


class DeviceTimeout(DeviceError):
    """The instrument did not answer in time."""


class DeviceDisconnected(DeviceError):
    """The link to the instrument is gone (port closed, cable unplugged)."""
