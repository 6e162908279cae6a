"""The async side of a link: worker threads, timeouts, query delays, error checks.

Everything a message-based driver would otherwise repeat lives here once:

* every blocking call runs in ``trio.to_thread.run_sync(..., abandon_on_cancel=True)``
  under a Trio deadline a little longer than the link's own timeout, so even a driver
  stack that ignores its timeout (a wedged USB driver) cannot hang the caller; the hung
  thread is abandoned, asked to let go (:meth:`Link.interrupt`), and never left reading
  the port beside the next call — it would eat the replies meant for that call. A thread
  that did finish, but whose answer the loop saw only after the deadline (the whole daemon
  was stopped meanwhile: SIGSTOP, a VM pause), is not hung: its answer is used;
* a query is one trip to the worker thread (drop stale input, write, wait the query
  delay, read), so the thread hop is paid once per query, not three times;
* after a write the instrument's error report (``SYST:ERR?`` for SCPI) is read, and an
  error there becomes :class:`CommandRejected` naming the command that caused it;
* link failures become :class:`capabilities.DeviceTimeout` or
  :class:`capabilities.DeviceDisconnected` with the instrument, the command and what to
  check, which is what the supervisor shows when it faults the instrument.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import outcome
import trio

from capabilities import DeviceDisconnected, DeviceTimeout
from drivers.toolkit.errors import CommandRejected, UnexpectedReply
from drivers.toolkit.link import Link, LinkLost, LinkTimeout

T = TypeVar("T")

#: Extra time the Trio deadline grants a link call beyond the link's own timeout.
GRACE_S = 1.0


class ErrorCheck(Protocol):
    """How an instrument reports the error of the last command."""

    def read_errors(self, ask: Callable[[str], str]) -> list[str]:
        """Ask the instrument (``ask(query) -> reply``, blocking) and return the errors.

        Raises ``ValueError(reply)`` when a reply is not in the instrument's error format.
        """
        ...


@dataclass(frozen=True)
class ScpiErrorQueue:
    """SCPI's error queue: ``SYST:ERR?`` answers ``-113,"Undefined header"`` until ``0,...``."""

    query: str = "SYST:ERR?"
    max_entries: int = 20
    """The queue is drained to this depth; a SCPI queue holds at least 2 entries."""

    def read_errors(self, ask: Callable[[str], str]) -> list[str]:
        errors: list[str] = []
        for _ in range(self.max_entries):
            reply = ask(self.query).strip()
            code, _, _ = reply.partition(",")
            try:
                if int(code) == 0:
                    break
            except ValueError:
                raise ValueError(reply) from None
            errors.append(reply)
        return errors


class Connection:
    """One message-based connection to an instrument, shared by the instrument's channels."""

    def __init__(
        self,
        link: Link,
        *,
        model: str,
        timeout_s: float,
        query_delay_s: float = 0.0,
        error_check: ErrorCheck | None = None,
        unsolicited: tuple[str, ...] = (),
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.link = link
        self.model = model
        self.timeout_s = timeout_s
        self.query_delay_s = query_delay_s
        self.error_check = error_check
        self.unsolicited = unsolicited
        self._lock = trio.Lock()
        self._open = False
        self._wedged = False
        self._idle = _set_event()
        """Set while no worker thread is on the link (one abandoned by a cancel may be)."""

    @property
    def name(self) -> str:
        """The instrument as messages name it: model and where it is connected."""
        return f"{self.model} at {self.link.address}"

    @property
    def deadline_s(self) -> float:
        """How long one trip to the worker thread may take before it is abandoned as hung.

        Twice the link's timeout (a query is a write and a read, each bounded by it) plus
        :data:`GRACE_S`: a link that honours its timeout always answers before this.
        """
        return self.timeout_s * 2 + GRACE_S

    async def open(self) -> None:
        # A thread still stuck on the old port object holds only that object; opening
        # gives the link a new one, so there is nothing to wait for.
        self._wedged = False
        self._idle = _set_event()
        await self._run(self.link.open, "(opening the link)", opening=True)
        self._open = True

    async def close(self) -> None:
        self._open = False
        # Closing the port under a thread still reading it would race that thread; an
        # abandoned one normally lets go at once (it was interrupted, or its own timeout
        # ends it). One that stays stuck keeps the link: it is released with the process.
        with trio.move_on_after(GRACE_S):
            await self._idle.wait()
        if self._idle.is_set():
            await trio.to_thread.run_sync(self.link.close, abandon_on_cancel=True)

    async def write(self, command: str, *, check_errors: bool = True) -> None:
        """Send ``command``; then, if the instrument has an error report, read it."""

        def send() -> list[str]:
            self.link.write(command)
            return self._read_errors(command) if check_errors else []

        errors = await self._run(send, command)
        if errors:
            raise CommandRejected(
                f"{self.name} rejected {command!r}: {'; '.join(errors)}; "
                "check the value and the instrument's mode"
            )

    async def query(self, command: str, *, reply_prefix: str = "") -> str:
        """Send ``command`` and return the reply (termination stripped).

        Messages the instrument sends unasked (those starting with one of the
        connection's ``unsolicited`` prefixes, e.g. the end-of-move report of a motor)
        are skipped while waiting for a reply that starts with ``reply_prefix``.
        """

        def ask() -> str:
            return self._ask(command, reply_prefix)

        return await self._run(ask, command)

    async def check_errors(self, after: str) -> None:
        """Read the error report now; ``after`` names what ran before, for the message."""
        errors = await self._run(lambda: self._read_errors(after), self._error_query_name())
        if errors:
            raise CommandRejected(f"{self.name} reports after {after!r}: {'; '.join(errors)}")

    def unexpected(self, command: str, reply: str, expected: str) -> UnexpectedReply:
        """The error for a reply that does not parse (garbage, or another instrument)."""
        return UnexpectedReply(
            f"{self.name} answered {reply!r} to {command!r}, expected {expected}; check that "
            f"{self.link.address} is a {self.model} and that nothing else uses the link"
        )

    # --- worker-thread side (blocking) ---

    def _ask(self, command: str, reply_prefix: str = "") -> str:
        self.link.discard_input()
        self.link.write(command)
        if self.query_delay_s:
            time.sleep(self.query_delay_s)
        reply = self.link.read()
        while not reply.startswith(reply_prefix) and reply.startswith(self.unsolicited):
            reply = self.link.read()
        return reply

    def _read_errors(self, after: str) -> list[str]:
        if self.error_check is None:
            return []
        try:
            return self.error_check.read_errors(self._ask)
        except ValueError as e:
            raise _Garbage(self._error_query_name(), str(e)) from e

    def _error_query_name(self) -> str:
        return getattr(self.error_check, "query", "error query")

    # --- async side ---

    async def _run(self, fn: Callable[[], T], command: str, *, opening: bool = False) -> T:
        if self._wedged:
            raise DeviceDisconnected(
                f"{self.name}: the link hung earlier and is abandoned; it must be reopened"
            )
        if not (self._open or opening):
            raise DeviceDisconnected(f"{self.name} is not open; call open() first")
        async with self._lock:
            try:
                return await self._bounded(fn)
            except trio.TooSlowError:
                self._wedged = True
                self.link.interrupt()
                raise DeviceTimeout(
                    f"{self.name} hung on {command!r}: the I/O call was still blocked after "
                    f"{self.deadline_s:g} s (timeout {self.timeout_s:g} s); the link is "
                    f"abandoned and must be reopened. {self.link.hint}"
                ) from None
            except LinkTimeout as e:
                raise DeviceTimeout(
                    f"{self.name} did not answer {command!r}: {e}. {self.link.hint}"
                ) from None
            except LinkLost as e:
                self._open = False
                raise DeviceDisconnected(
                    f"{self.name} is unreachable while sending {command!r}: {e}. {self.link.hint}"
                ) from None
            except _Garbage as e:
                raise self.unexpected(e.command, e.reply, "an error-queue entry") from None

    async def _bounded(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker thread within :attr:`deadline_s`; TooSlowError if it hung."""
        trip: _Trip[T] | None = None
        try:
            with trio.fail_after(self.deadline_s):
                # A call its caller cancelled may still be on the link: two threads
                # reading one port would split the replies between them.
                await self._idle.wait()
                trip = _Trip(fn)
                return await self._in_thread(trip)
        except trio.TooSlowError:
            if trip is None or trip.finished is None:
                raise
            # The thread finished; only the loop was too late to see it (stopped process).
            return trip.finished.unwrap()

    async def _in_thread(self, trip: _Trip[T]) -> T:
        self._idle = trip.idle
        try:
            await trio.to_thread.run_sync(trip.run, abandon_on_cancel=True)
        except trio.Cancelled:
            trip.drop_unless_started()
            raise
        assert trip.finished is not None
        return trip.finished.unwrap()


class _Trip(Generic[T]):
    """One trip to a worker thread, which tells the event loop when it is off the link.

    A cancelled trip may never reach its thread (cancelled while waiting for a free one)
    or reach it later; either way ``idle`` must end up set exactly when nothing of this
    trip can touch the link any more, or the next call would wait for a ghost.
    """

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.idle = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Lock()
        self._started = self._dropped = False
        self.finished: outcome.Outcome[T] | None = None
        """What ``fn`` returned or raised, once it has (read on the loop after a deadline)."""

    def run(self) -> None:
        with self._lock:
            if self._dropped:
                raise RuntimeError("dropped before it started")  # nobody reads this result
            self._started = True
        try:
            self.finished = outcome.capture(self.fn)
        finally:
            # Reported even when the trip was abandoned: the next call waits for it.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self.idle.set)

    def drop_unless_started(self) -> None:
        with self._lock:
            if not self._started:
                self._dropped = True
                self.idle.set()


def _set_event() -> trio.Event:
    event = trio.Event()
    event.set()
    return event


class _Garbage(Exception):
    def __init__(self, command: str, reply: str) -> None:
        super().__init__(command, reply)
        self.command = command
        self.reply = reply
