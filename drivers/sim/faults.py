"""Fault injection shared by every simulated instrument.

Real instruments fail in three ways the daemon must survive: they answer with an error,
they stop answering (a call that never returns), or the link drops. A simulated
instrument can be told to do each, either

* from its config, by call count: ``fail_after_calls = 3`` lets three capability calls
  through and raises :class:`~capabilities.DeviceError` on every one after that (likewise
  ``hang_after_calls``, ``disconnect_after_calls``). The count starts again at every
  ``open()``, so an instrument configured this way faults again after each restart,
  which is how tests drive a supervisor into its restart limit; or
* at run time, with ``inject_fault(kind)``: the fault holds for every call until the
  instrument is closed and re-opened (what a supervisor restart does) or until
  ``inject_fault("clear")``.

A hang is ``trio.sleep_forever()``: only a cancellation (the supervisor's call timeout)
ends it, exactly like a device that stopped talking.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

import trio

from capabilities import DeviceDisconnected, DeviceError, InvalidRequest

FaultKind = Literal["raise", "hang", "disconnect"]
FAULT_KINDS: tuple[str, ...] = (*get_args(FaultKind), "clear")


class Faults:
    """Counts capability calls and decides which of them misbehave."""

    def __init__(
        self,
        instrument: str,
        *,
        fail_after_calls: int | None = None,
        hang_after_calls: int | None = None,
        disconnect_after_calls: int | None = None,
    ) -> None:
        self._instrument = instrument
        knobs: list[tuple[int, FaultKind]] = []
        settings: tuple[tuple[str, int | None, FaultKind], ...] = (
            ("fail_after_calls", fail_after_calls, "raise"),
            ("hang_after_calls", hang_after_calls, "hang"),
            ("disconnect_after_calls", disconnect_after_calls, "disconnect"),
        )
        for param, after, kind in settings:
            if after is None:
                continue
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                raise ValueError(
                    f"{param} must be a whole number >= 0 (or left out), got {after!r}"
                )
            knobs.append((after, kind))
        # The knob with the lowest count strikes first and, like a real failure, stays.
        self._knobs = sorted(knobs, key=lambda knob: knob[0])
        self._calls = 0
        self._injected: FaultKind | None = None
        self._open = False

    def opened(self) -> None:
        """A fresh connection: injected faults are gone and call counting starts again."""
        self._open = True
        self._calls = 0
        self._injected = None

    def closed(self) -> None:
        self._open = False

    def inject(self, kind: str) -> None:
        """Make every later call misbehave as ``kind``; ``"clear"`` undoes it (and the count)."""
        self.require_open()
        if kind == "clear":
            self._injected = None
            self._calls = 0
        elif kind in FAULT_KINDS:
            self._injected = cast(FaultKind, kind)
        else:
            raise InvalidRequest(
                f"unknown fault kind {kind!r} for {self._instrument}; use one of: {', '.join(FAULT_KINDS)}"
            )

    def require_open(self) -> None:
        if not self._open:
            raise DeviceDisconnected(f"{self._instrument} is not open: call open() first")

    async def before_call(self, method: str) -> None:
        """Run at the start of every capability call: count it, then misbehave if due."""
        self.require_open()
        self._calls += 1
        fault = self._injected or next(
            (kind for after, kind in self._knobs if self._calls > after), None
        )
        if fault == "hang":
            await trio.sleep_forever()
        if fault == "disconnect":
            raise DeviceDisconnected(
                f"{self._instrument}.{method}: simulated disconnect; the link stays down"
                " until the instrument is re-opened"
            )
        if fault == "raise":
            raise DeviceError(
                f"{self._instrument}.{method}: simulated device error; it persists"
                " until the instrument is re-opened"
            )
