"""The supervisor: one Trio task owns each instrument's driver.

Every call to an instrument is a request queued to the task that owns its driver, so
calls never interleave on the wire and a driver never needs locks. The owner task also
decides what a failure means:

* a refused request (:class:`capabilities.InvalidRequest`), a caller-bounded wait that
  ran out (:class:`capabilities.WaitTimeout`) or a value the instrument itself flags as
  meaningless (:class:`capabilities.MeasurementInvalid`) goes back to the caller and the
  instrument stays ready;
* anything else a driver raises, or a call that outlives its timeout, *faults* the
  instrument: pending calls fail at once, the driver is closed, and after a back-off it is
  created and opened again. Too many faults within a window and it stays faulted, with
  the reason, until someone calls :meth:`Supervisor.reset`. Every fault, restart and
  give-up is logged on ``labd.supervisor``; the last fault stays in
  :attr:`InstrumentHandle.last_fault` after recovery.

A call's timeout is charged only to the party that spent it (docs/security.md):

* a method with a ``timeout`` parameter (``wait_settled``) is the caller's own bounded
  wait: its deadline is the call timeout *plus* the caller's, so the driver's
  :class:`~capabilities.WaitTimeout` arrives first. Left unbounded, it is given the call
  timeout as its bound: a long wait ends in ``WaitTimeout``, not in a fault;
* time the daemon itself was stalled (a SIGSTOP, a VM pause: :mod:`labd.loopwatch`) is
  not counted against a call or an ``open()``: its deadline moves by that much.

A call may come with a *guard* (:meth:`InstrumentHandle.call`): it runs in the owner task
right before the call, with the set-points the call would leave (:mod:`labd.setpoints`),
and can refuse it. Guard and call are one step: no other call reaches the driver between
them, which is what makes a range restriction hold against every interleaving of calls.

One instrument's fault never reaches its siblings: each owner runs in its own task and
catches everything its driver throws.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import outcome
import trio

from capabilities import (
    CAPABILITIES,
    DeviceError,
    HasChannels,
    InvalidRequest,
    MeasurementInvalid,
    WaitTimeout,
    capabilities_of,
    now,
)
from capabilities.declarations import declaration, declared
from capabilities.parameters import find, text_of
from labd.config import InstrumentSpec, RestartPolicy
from labd.errors import (
    CallTimeout,
    CapabilityMissing,
    InstrumentBusy,
    InstrumentUnavailable,
    UnknownInstrument,
)
from labd.loopwatch import stalled_seconds
from labd.setpoints import Setpoints
from labd.values import parameter_value

T = TypeVar("T")

log = logging.getLogger("labd.supervisor")

Guard = Callable[[Mapping[str, object]], None]
"""Checks a call in the owner task, given the set-points it would leave (quantity ->
value, ``parameter:<name>`` -> value; :mod:`labd.setpoints`); raises an :class:`~capabilities.InvalidRequest` to refuse it."""

CHANGES_SETTINGS = frozenset(
    m.name for decl in declared() for m in decl.methods if m.mutates and m.name != "inject_fault"
)
"""Capability calls after which an instrument's parameters may read differently
(``set_wavelength`` is the ``wavelength`` parameter; switching a supply on, or lowering its
protection level, may trip it); fault injection changes no setting."""

QUEUE_LIMIT = 256
"""Calls waiting on one instrument beyond this are refused as busy at once."""


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    FAULTED = "faulted"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StateChange:
    instrument: str
    state: State
    reason: str | None
    timestamp: float


@dataclass(frozen=True)
class LastFault:
    """The most recent fault of an instrument, kept after it recovered."""

    reason: str
    timestamp: float
    """Wall clock, seconds since the epoch."""


def capability_methods(capability: type) -> list[str]:
    """The method names a capability declares (:mod:`capabilities.declarations`)."""
    return [method.name for method in declaration(capability.__name__).methods]


@dataclass(eq=False)
class _Request:
    handle: str
    """The name of the handle it came through (``tc`` or ``tc/A``)."""
    target: object
    setpoints: Setpoints
    method: str
    args: tuple[Any, ...]
    timeout: float
    """Limits the wait in the queue (then: busy) and, with ``caller_timeout``, the run."""
    caller_timeout: float
    """The caller's own bound on the call (a ``timeout`` argument); 0: none."""
    guard: Guard | None
    started: bool = False
    waiting: trio.CancelScope = field(default_factory=trio.CancelScope)
    """The caller's wait: its deadline bounds the wait in the queue, and the owner lifts it
    when the call starts, so the caller sleeps once per call (woken by ``done``) instead of
    twice (once on starting, once on the result)."""
    done: trio.Event = field(default_factory=trio.Event)
    result: outcome.Outcome[Any] | None = None
    caller_gone: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def budget(self) -> float:
        """How long the call may run before it faults the instrument."""
        return self.timeout + self.caller_timeout

    def finish(self, result: outcome.Outcome[Any]) -> None:
        self.result = result
        self.done.set()


@dataclass(eq=False)
class _Step:
    """What the owner task runs now (a call, an ``open()``) and when it is overdue."""

    what: str
    started: float
    budget: float
    scope: trio.CancelScope
    excused: float = 0.0
    """Seconds the daemon itself was stalled meanwhile: not counted against the step."""
    timed_out: bool = False

    @property
    def deadline(self) -> float:
        return self.started + self.budget + self.excused


class InstrumentHandle:
    """The daemon's view of one instrument (or one channel of an instrument).

    All access goes through :meth:`call` (by method name) or :meth:`proxy` (typed).
    """

    def __init__(self, name: str, driver: str, owner: _Owner, channel: str | None = None) -> None:
        self.name = name
        self.driver = driver
        self.channel = channel
        self._owner = owner
        self.capabilities: list[str] = []
        self._methods: set[str] = set()

    def _learn(self, target: object) -> None:
        self.capabilities = [c for c in capabilities_of(target) if c != "Instrument"]
        self._methods = {m for c in self.capabilities for m in capability_methods(CAPABILITIES[c])}

    @property
    def state(self) -> State:
        return self._owner.state

    @property
    def reason(self) -> str | None:
        return self._owner.reason

    @property
    def restarts(self) -> int:
        return self._owner.restarts

    @property
    def last_fault(self) -> LastFault | None:
        return self._owner.last_fault

    async def call(
        self, method: str, *args: Any, timeout: float | None = None, guard: Guard | None = None
    ) -> Any:
        """Run ``method(*args)`` on the driver, serialised with every other call to it.

        ``guard``, if given, checks the call in the owner task first (see :data:`Guard`);
        a relative move then runs as the absolute move to the target it checked.

        Raises :class:`InstrumentUnavailable` when the instrument is not ready,
        :class:`InstrumentBusy` when the call could not start within ``timeout``,
        :class:`CallTimeout` when the driver took longer (it is then restarted), and
        whatever the capability or the guard raised otherwise.
        """
        if method not in self._methods:
            have = ", ".join(self.capabilities) or "none"
            raise CapabilityMissing(
                f"{self.name} has no method {method!r} (its capabilities: {have})"
            )
        return await self._owner.submit(self, method, args, timeout, guard)

    def proxy(self, capability: type[T]) -> T:
        """An object implementing ``capability`` whose methods go through :meth:`call`."""
        name = capability.__name__
        if name not in self.capabilities:
            have = ", ".join(self.capabilities) or "none"
            raise CapabilityMissing(f"{self.name} is not {name} (its capabilities: {have})")
        return cast(T, _Proxy(self, capability_methods(capability)))

    def target(self) -> object:
        """The live driver object (or channel object); only the owner task should call it."""
        return self._owner.target_of(self.channel)

    def __repr__(self) -> str:
        return f"<InstrumentHandle {self.name} {self.state.value}>"


class _Proxy:
    def __init__(self, handle: InstrumentHandle, methods: list[str]) -> None:
        for method in methods:
            setattr(self, method, self._bind(handle, method))
        self._handle = handle

    @staticmethod
    def _bind(handle: InstrumentHandle, method: str) -> Callable[..., Any]:
        async def call(*args: Any) -> Any:
            return await handle.call(method, *args)

        call.__name__ = method
        return call

    def __repr__(self) -> str:
        return f"<proxy of {self._handle.name}>"


class _Owner:
    """The task that owns one driver: opens it, serves calls, restarts it on faults."""

    def __init__(
        self,
        spec: InstrumentSpec,
        policy: RestartPolicy,
        notify: Callable[[StateChange], None],
        changed: Callable[[str, str, tuple[Any, ...]], None],
    ) -> None:
        self.spec = spec
        self.policy = policy
        self._notify = notify
        self._changed = changed
        self.state = State.STARTING
        self.reason: str | None = None
        self.restarts = 0
        self.last_fault: LastFault | None = None
        self.driver: object | None = None
        self.channel_objects: dict[str, object] = {}
        self.handles: dict[str, InstrumentHandle] = {}
        self.setpoints: dict[str | None, Setpoints] = {}
        self._send, self._receive = trio.open_memory_channel[_Request](QUEUE_LIMIT)
        self._reset = trio.Event()
        self._faults: deque[float] = deque()
        self._first_attempt = trio.Event()
        self._step: _Step | None = None
        self._nap = trio.CancelScope()  # the deadline watch's sleep (see _watch)
        self._prepare(spec.create())

    def _prepare(self, driver: object) -> None:
        """Create handles for the instrument and its channels (no I/O: before ``open``)."""
        self.driver = driver
        main = self.handles.get(self.spec.name) or InstrumentHandle(
            self.spec.name, self.spec.driver, self
        )
        main._learn(driver)
        self.handles[self.spec.name] = main
        self.channel_objects = dict(driver.channels()) if isinstance(driver, HasChannels) else {}
        # A new driver knows nothing of the targets the previous one was commanded to.
        self.setpoints = {channel: Setpoints() for channel in (None, *self.channel_objects)}
        for channel, obj in self.channel_objects.items():
            name = f"{self.spec.name}/{channel}"
            handle = self.handles.get(name) or InstrumentHandle(
                name, self.spec.driver, self, channel
            )
            handle._learn(obj)
            self.handles[name] = handle

    def target_of(self, channel: str | None) -> object:
        return self.driver if channel is None else self.channel_objects[channel]

    def set_state(self, state: State, reason: str | None = None, *, announce: bool = True) -> None:
        self.state, self.reason = state, reason
        if announce:
            for name in self.handles:
                self._notify(StateChange(name, state, reason, now()))

    async def submit(
        self,
        handle: InstrumentHandle,
        method: str,
        args: tuple[Any, ...],
        timeout: float | None,
        guard: Guard | None,
    ) -> Any:
        if self.state not in (State.READY, State.BUSY):
            why = f": {self.reason}" if self.reason else ""
            raise InstrumentUnavailable(
                f"{handle.name} is {self.state.value}{why}", self.state.value, self.reason
            )
        target = self.target_of(handle.channel)
        signature, positional = _signature(type(target), method)
        timeout = self.spec.call_timeout_s if timeout is None else timeout
        caller_timeout = 0.0
        if len(args) != positional:  # else the common case, checked without binding
            try:
                bound = signature.bind(None, *args)
            except TypeError as e:
                raise InvalidRequest(f"{handle.name}.{method}: {e}") from None
            if "timeout" in signature.parameters:
                bounded = _caller_timeout(handle.name, method, bound.arguments.get("timeout"))
                # Unbounded, the wait gets the call timeout as its own bound.
                caller_timeout = bound.arguments["timeout"] = (
                    timeout if bounded is None else bounded
                )
                args = bound.args[1:]
        request = _Request(
            handle.name,
            target,
            self.setpoints[handle.channel],
            method,
            args,
            timeout,
            caller_timeout,
            guard,
        )
        try:
            self._send.send_nowait(request)
        except trio.WouldBlock:
            raise InstrumentBusy(
                f"{handle.name} has {QUEUE_LIMIT} calls waiting; try later"
            ) from None
        try:
            request.waiting.deadline = trio.current_time() + timeout
            with request.waiting:
                await request.done.wait()
            if not request.done.is_set():
                if not request.started:
                    # Waiting is not the driver's fault: the instrument stays ready.
                    request.caller_gone = True
                    raise InstrumentBusy(
                        f"{handle.name}.{method} could not start within {timeout:g} s: "
                        "other calls held the instrument; retry or pass a longer timeout"
                    )
                # It started as the queue wait ran out; the run has its own budget.
                await request.done.wait()
        except trio.Cancelled:
            request.caller_gone = True
            request.scope.cancel()
            raise
        assert request.result is not None
        return request.result.unwrap()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, name=f"deadlines:{self.spec.name}")
            try:
                await self._supervise()
            finally:
                nursery.cancel_scope.cancel()

    async def _supervise(self) -> None:
        name = self.spec.name
        try:
            while True:
                reason, gave_up = await self._open_and_serve()
                if gave_up:
                    await self._reset.wait()
                    self._reset = trio.Event()
                    self._faults.clear()
                    log.info("%s: reset by the operator", name)
                    self.set_state(State.RESTARTING, "reset by operator")
                    backoff = 0.0
                else:
                    backoff = min(
                        self.policy.backoff_initial_s * 2 ** (len(self._faults) - 1),
                        self.policy.backoff_max_s,
                    )
                    self.set_state(State.RESTARTING, reason)
                    await trio.sleep(backoff)
                self.restarts += 1
                log.info("%s: restart %d after %.3g s back-off", name, self.restarts, backoff)
                self._prepare(self.spec.create())
        finally:
            self._fail_pending(InstrumentUnavailable(f"{name} is stopped", "stopped"))
            with trio.CancelScope(shield=True):
                await self._close()
            self.set_state(State.STOPPED)

    def reset(self) -> None:
        self._reset.set()

    def _fault(self, reason: str) -> bool:
        """Record a fault (state, log, last fault); True if the restart limit is reached."""
        t = trio.current_time()
        self._faults.append(t)
        while self._faults and self._faults[0] < t - self.policy.window_s:
            self._faults.popleft()
        self.last_fault = LastFault(reason, now())
        name, count, window = self.spec.name, len(self._faults), self.policy.window_s
        if count > self.policy.max_restarts:
            log.error(
                "%s: gave up after %d restarts within %g s (fault %d); it stays faulted until"
                " reset; last fault: %s",
                name, self.policy.max_restarts, window, count, reason,
            )  # fmt: skip
            self.set_state(
                State.FAULTED,
                f"gave up after {self.policy.max_restarts} restarts within "
                f"{window:g} s; last fault: {reason}",
            )
            return True
        log.warning(
            "%s: faulted (fault %d of at most %d within %g s): %s",
            name, count, self.policy.max_restarts, window, reason,
        )  # fmt: skip
        self.set_state(State.FAULTED, reason)
        return False

    async def _open_and_serve(self) -> tuple[str, bool]:
        """Open the driver and serve calls until it faults: the fault's reason, and whether
        the restart limit is reached."""
        reason = await self._open()
        if reason is None:
            self.set_state(State.READY)
            if self.restarts:
                log.info("%s: ready again after restart %d", self.spec.name, self.restarts)
            self._first_attempt.set()
            reason = await self._serve()
        # Before any checkpoint: the caller whose call faulted it must find it faulted.
        gave_up = self._fault(reason)
        self._first_attempt.set()
        self._fail_pending(
            InstrumentUnavailable(f"{self.spec.name} faulted: {reason}", "faulted", reason)
        )
        with trio.CancelScope(shield=True):
            await self._close()
        return reason, gave_up

    async def _serve(self) -> str:
        async for request in self._receive:
            if request.caller_gone:
                continue
            request.started = True
            request.waiting.deadline = math.inf
            self.set_state(State.BUSY, announce=False)
            fault = await self._execute(request)
            if fault is not None:
                return fault
            self.set_state(State.READY, announce=False)
        raise AssertionError("the request channel never closes")

    async def _open(self) -> str | None:
        """Open the driver within ``open_timeout_s``; the reason it failed, or None."""
        driver = self.driver
        assert driver is not None
        step = _Step("open()", trio.current_time(), self.policy.open_timeout_s, trio.CancelScope())
        with step.scope:
            self._begin(step)
            try:
                await driver.open()  # type: ignore[attr-defined]
            except Exception as e:
                return f"open() failed: {_describe(e)}"
            try:
                await self._apply_settings()
            except Exception as e:
                return f"the lab config's settings: {_describe(e)}"
            finally:
                self._end(step)
            return None
        return f"open() did not finish within {step.budget:g} s{_excuse(step)}"

    async def _apply_settings(self) -> None:
        """Set the parameters the lab config gives (``[instruments.X.settings]``) on the
        freshly opened driver: a restarted instrument gets them again (docs/parameters.md)."""
        for channel, values in self.spec.settings.items():
            target = self.target_of(channel or None)
            described = list(await target.parameters())  # type: ignore[attr-defined]
            for name, value in values.items():
                checked = parameter_value(find(described, name, self.spec.name), value)
                await target.set_parameter(name, checked)  # type: ignore[attr-defined]
                where = f"{self.spec.name}/{channel}" if channel else self.spec.name
                log.info("%s: %s = %s (lab config)", where, name, text_of(checked))

    async def _execute(self, request: _Request) -> str | None:
        """Run one request; returns a fault reason if the instrument must be restarted."""
        step = _Step(f"{request.method}()", trio.current_time(), request.budget, request.scope)
        with request.scope:
            self._begin(step)
            try:
                value = await self._perform(request)
            except (InvalidRequest, WaitTimeout, MeasurementInvalid) as e:
                request.finish(outcome.Error(e))
                return None
            except Exception as e:  # trio.Cancelled is a BaseException: it passes
                reason = f"{request.method}() raised {_describe(e)}"
                error = (
                    e if isinstance(e, DeviceError) else DeviceError(f"{self.spec.name}: {reason}")
                )
                request.finish(outcome.Error(error))
                return reason
            finally:
                self._end(step)
            request.finish(outcome.Value(value))
            if request.method in CHANGES_SETTINGS:
                self._changed(request.handle, request.method, request.args)
            return None
        if step.timed_out:
            allowed = f"{request.budget:g} s"
            if request.caller_timeout:
                allowed += (
                    f" (call timeout {request.timeout:g} s + the caller's own"
                    f" {request.caller_timeout:g} s)"
                )
            reason = f"{request.method}() did not answer within {allowed}{_excuse(step)}"
            request.finish(outcome.Error(CallTimeout(f"{self.spec.name}: {reason}")))
            return reason
        # The caller went away (its cancel scope cancelled ours): not the driver's fault.
        if not request.done.is_set():
            request.finish(outcome.Error(InstrumentUnavailable("call cancelled by its caller")))
        return None

    async def _perform(self, request: _Request) -> Any:
        """The guard (if any) and the call, as one step of the owner task."""
        method, args = request.method, request.args
        if request.guard is not None:
            plan = await request.setpoints.plan(request.target, method, args)
            request.guard(plan.leaves)
            method, args = plan.method, plan.args
        request.setpoints.starting(method)
        value = await getattr(request.target, method)(*args)
        request.setpoints.succeeded(method, args)
        return value

    def _begin(self, step: _Step) -> None:
        self._step = step
        if step.deadline < self._nap.deadline:
            self._nap.deadline = step.deadline

    def _end(self, step: _Step) -> None:
        if self._step is step:
            self._step = None

    async def _watch(self) -> None:
        """Cancel the running step once it has run past its budget *while the daemon ran*.

        One sleeping task per instrument instead of a deadline per call: a Trio deadline
        cannot be told, once it passed, that the time went to a stall of the whole
        daemon. This task sleeps until the running step's deadline (``_begin`` brings the
        wake-up forward for a step due sooner), then asks :func:`stalled_seconds` how much
        of the step's time the daemon itself was stalled, and moves the deadline by that.
        """
        while True:
            step = self._step
            due = step.deadline if step is not None and not step.timed_out else math.inf
            with trio.CancelScope(deadline=due) as self._nap:
                await trio.sleep_forever()
            step = self._step
            if step is None or step.timed_out:
                continue
            t = trio.current_time()
            if t < step.deadline:
                continue
            stalled = stalled_seconds(step.started, t)
            if stalled > step.excused:
                step.excused = stalled
                log.warning(
                    "%s: %s was in flight while the daemon itself was stalled %.2f s;"
                    " its deadline moves by that much (not charged to the driver)",
                    self.spec.name, step.what, stalled,
                )  # fmt: skip
                if t < step.deadline:
                    continue
            step.timed_out = True
            step.scope.cancel()

    def _fail_pending(self, error: Exception) -> None:
        while True:
            try:
                request = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            request.finish(outcome.Error(error))

    async def _close(self) -> None:
        driver = self.driver
        if driver is None:
            return
        with trio.move_on_after(self.policy.close_timeout_s):
            # Closing a broken driver may fail; the next open starts afresh anyway.
            with contextlib.suppress(Exception):
                await driver.close()  # type: ignore[attr-defined]


_SIGNATURES: dict[tuple[type, str], tuple[inspect.Signature, int | None]] = {}


def _signature(cls: type, method: str) -> tuple[inspect.Signature, int | None]:
    """The method's signature, and its number of arguments when exactly that many
    positional arguments, none named ``timeout``, is all it takes (None otherwise).

    Checking arguments here turns a caller's mistake into InvalidRequest instead of a
    TypeError inside the driver (which would fault it). Cached: signature() is slow, and
    the count spares the common call ``bind()`` (a tenth of a call's cost through the
    supervisor, bench/README.md "Supervisor").
    """
    key = (cls, method)
    if key not in _SIGNATURES:
        signature = inspect.signature(getattr(cls, method))
        params = list(signature.parameters.values())[1:]  # after self
        simple = all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty
            and p.name != "timeout"
            for p in params
        )
        _SIGNATURES[key] = signature, len(params) if simple else None
    return _SIGNATURES[key]


def _caller_timeout(name: str, method: str, value: object) -> float | None:
    """The caller's own bound passed as ``timeout``, checked here so that a bad one is the
    caller's error (InvalidRequest) and never a driver's fault; None for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise InvalidRequest(
            f"{name}.{method}: timeout must be a finite number of seconds >= 0 (or none),"
            f" got {value!r}"
        )
    return float(value)


def _excuse(step: _Step) -> str:
    if not step.excused:
        return ""
    return f", not counting {step.excused:.2f} s the daemon itself was stalled"


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Supervisor:
    """Runs every configured instrument in its own task, restarting the ones that fault."""

    def __init__(
        self, specs: Sequence[InstrumentSpec], policy: RestartPolicy | None = None
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._watchers: list[trio.MemorySendChannel[StateChange]] = []
        self.on_changed: Callable[[str, str, tuple[Any, ...]], None] | None = None
        """Told ``(handle name, method, args)`` after a call that may have changed a parameter
        (:data:`CHANGES_SETTINGS`); the daemon records what changed (labd.parameters)."""
        self._owners = [
            _Owner(spec, self.policy, self._broadcast, self._call_changed) for spec in specs
        ]

    def _call_changed(self, handle: str, method: str, args: tuple[Any, ...]) -> None:
        if self.on_changed is not None:
            self.on_changed(handle, method, args)

    def _broadcast(self, change: StateChange) -> None:
        for watcher in list(self._watchers):
            try:
                watcher.send_nowait(change)
            except trio.WouldBlock:
                pass  # a watcher that does not keep up misses changes, never blocks us
            except trio.BrokenResourceError:
                self._watchers.remove(watcher)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled; ``started`` once every instrument tried to open."""
        async with trio.open_nursery() as nursery:
            for owner in self._owners:
                nursery.start_soon(owner.run, name=f"instrument:{owner.spec.name}")
            for owner in self._owners:
                await owner._first_attempt.wait()
            task_status.started()

    def names(self) -> list[str]:
        return [name for owner in self._owners for name in owner.handles]

    def handles(self) -> list[InstrumentHandle]:
        return [handle for owner in self._owners for handle in owner.handles.values()]

    def get(self, name: str) -> InstrumentHandle:
        for owner in self._owners:
            if name in owner.handles:
                return owner.handles[name]
        raise UnknownInstrument(f"no instrument named {name!r}; known: {', '.join(self.names())}")

    def reset(self, name: str) -> None:
        """Let an instrument that stayed faulted (restart limit reached) try again."""
        self.get(name)._owner.reset()

    def subscribe_states(self, buffer: int = 256) -> trio.MemoryReceiveChannel[StateChange]:
        """A channel of state changes (busy/ready flips of each call are not sent)."""
        # A watcher that closed its end is otherwise dropped only by the next broadcast,
        # which a quiet lab may not make for weeks while clients come and go.
        self._watchers = [w for w in self._watchers if w.statistics().open_receive_channels]
        send, receive = trio.open_memory_channel[StateChange](buffer if buffer else math.inf)
        self._watchers.append(send)
        return receive
