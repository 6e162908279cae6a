"""Bounded waits whose end says whose bound it was.

``wait_settled(timeout)`` is bounded either by its caller (``timeout``) or, when the caller
gave none, by the driver's own patience (a ``settle_timeout_s``). Running out of the first
is the caller asking for less time than the physics needed, a
:class:`~capabilities.WaitTimeout` that never faults the instrument; running out of the
second means the device did not finish what it should have, a
:class:`~capabilities.DeviceTimeout`. A bare ``trio.fail_after`` gives
``trio.TooSlowError`` for both, which the supervisor can only treat as a driver bug.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from capabilities import DeviceTimeout, InvalidRequest, WaitTimeout


@contextmanager
def settle_deadline(label: str, timeout: float | None, default_s: float) -> Iterator[None]:
    """Bound the body by the caller's ``timeout`` or, if None, by ``default_s``.

    Raises :class:`WaitTimeout` when the caller's bound runs out, :class:`DeviceTimeout`
    when the driver's own does, and :class:`InvalidRequest` for a negative or non-finite
    ``timeout`` (``trio.fail_after`` would raise ValueError: a driver bug, not the caller's).
    """
    if timeout is not None and not 0 <= timeout < math.inf:
        raise InvalidRequest(
            f"{label}: timeout must be a finite number of seconds >= 0 (or none), got {timeout!r}"
        )
    bound = default_s if timeout is None else timeout
    try:
        with trio.fail_after(bound):
            yield
    except trio.TooSlowError:
        if timeout is None:
            raise DeviceTimeout(
                f"{label} did not settle within the driver's own bound of {default_s:g} s"
                " (its settle timeout); check that nothing blocks the axis and that the motor"
                " is enabled"
            ) from None
        raise WaitTimeout(
            f"{label} did not settle within {timeout:g} s, the wait its caller asked for;"
            " it is still moving: wait again or with a longer timeout"
        ) from None
