"""Parameters in the daemon: one way to read, set and record an instrument's settings.

Every surface that sets a parameter — the RPC ``Configurable`` server, a WASM script,
the CLI through RPC — comes here (docs/parameters.md). A set:

1. turns what the person wrote into the parameter's type and unit (:func:`labd.values.parameter_value`:
   ``"1064 nm"``, ``1.064`` with unit ``"um"``, ``"on"``), refusing a wrong dimension;
2. runs as one call in the instrument's owner task, with the holder's guard: the
   restriction's read-only flag, range and choices per parameter are checked there,
   atomically with the set (:class:`labd.rpc.policy.Policy`);
3. reads the value back where the instrument can report it, and records it on the
   instrument's ``<instrument>/parameters`` stream, so the ring, the files and replay
   say which setting held when.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pyarrow as pa
import trio

from capabilities import InvalidRequest, Parameter, ParameterValue, now
from capabilities.parameters import ParameterChange, find
from capabilities.parameters import text_of as text_of  # the one text form (scripts use it)
from labd.streams import Stream, StreamHub
from labd.supervisor import Guard, InstrumentHandle, State, StateChange, Supervisor
from labd.values import parameter_value as coerce

log = logging.getLogger("labd.parameters")

STREAM = "parameters"
"""The stream suffix: ``<instrument>/parameters`` (channels' sets included)."""

KIND = "parameters"
"""The stream kind (:data:`labd.rings.layout.KINDS`)."""

SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.float64()),
        pa.field("parameter", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("value", pa.string()),
        pa.field("number", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("by", pa.string()),
    ]
)
"""One row per set: the value as text (every kind), as a number where it is one (NaN
otherwise), and who set it ("rpc", "script <name> run <id>"; "open" when the instrument
became ready; the name of a capability call that changed it, such as "set_wavelength")."""

WATCH_BUFFER = 256
"""Changes a watcher may lag behind before it misses some (it is told how many)."""


Change = ParameterChange
"""One recorded change (:class:`capabilities.parameters.ParameterChange`)."""


class ParameterLog:
    """The ``<instrument>/parameters`` streams of one daemon and their live watchers."""

    def __init__(self, supervisor: Supervisor, hub: StreamHub) -> None:
        self._supervisor = supervisor
        self._streams: dict[str, Stream] = {}
        for handle in supervisor.handles():
            root = handle.name.split("/")[0]
            if "Configurable" in handle.capabilities and root not in self._streams:
                self._streams[root] = hub.create(f"{root}/{STREAM}", SCHEMA, KIND)
        self._watchers: dict[str, list[trio.MemorySendChannel[Change]]] = {}
        self._last: dict[tuple[str, str], ParameterValue] = {}
        """The last recorded value of each (handle, parameter)."""
        self._changed: dict[str, tuple[str, set[str]]] = {}
        """Handles a capability call may have changed -> (who changed them, parameters
        that recorded their own set and are not to be recorded again)."""
        self._wake = trio.Event()
        supervisor.on_changed = self.note_call

    def note_call(self, handle: str, method: str, args: tuple[Any, ...] = ()) -> None:
        """``method`` ran on ``handle`` (``set_wavelength``, ``set_on``): read its parameters
        again soon, and record those that changed (:meth:`follow_calls`). After a
        ``set_parameter`` the others: the set itself is recorded by :func:`set_value`."""
        if "Configurable" not in self._supervisor.get(handle).capabilities:
            return
        _, skip = self._changed.get(handle, ("", set()))
        by = method
        if method == "set_parameter" and args:
            by = f"set {args[0]}"
            skip.add(str(args[0]))
        self._changed[handle] = (by, skip)
        self._wake.set()

    async def follow_calls(self, *, settle_s: float = 0.2) -> None:
        """Record parameters that capability calls changed, by the call's name.

        A ``set_wavelength`` is the ``wavelength`` parameter set another way; without this
        the stream and every watcher would miss it. Calls within ``settle_s`` are read
        once, so a scan of moves costs one read of the stage's parameters, not one per move.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep(settle_s)
            changed, self._changed = self._changed, {}
            for name, (by, skip) in changed.items():
                await self._record_differences(self._supervisor.get(name), by, skip)

    async def _record_differences(
        self, handle: InstrumentHandle, method: str, skip: set[str]
    ) -> None:
        try:
            for parameter in await describe(handle):
                if not parameter.readable or parameter.name in skip:
                    continue
                value = await handle.call("get_parameter", parameter.name)
                if self._last.get((handle.name, parameter.name)) != value:
                    change = Change(
                        handle.name, parameter.name, value, parameter.unit, method, now()
                    )
                    self.record(handle, parameter, change)
        except Exception as e:  # a fault now is the instrument's, and the supervisor's business
            log.info("%s: parameters not re-read after %s: %s", handle.name, method, e)

    def record(self, handle: InstrumentHandle, parameter: Parameter, change: Change) -> None:
        self._last[(handle.name, change.parameter)] = change.value
        stream = self._streams.get(handle.name.split("/")[0])
        if stream is not None:
            number = (
                float(change.value)
                if isinstance(change.value, int | float) and not isinstance(change.value, bool)
                else math.nan
            )
            stream.publish(
                pa.record_batch(
                    [
                        pa.array([change.timestamp], pa.float64()),
                        pa.array([change.parameter]),
                        pa.array([handle.channel or ""]),
                        pa.array([text_of(change.value)]),
                        pa.array([number], pa.float64()),
                        pa.array([parameter.unit]),
                        pa.array([change.by]),
                    ],
                    schema=SCHEMA,
                )
            )
        for send in self._watchers.get(handle.name, []):
            # A watcher that lags misses changes; the stream has them all.
            with contextlib.suppress(trio.WouldBlock):
                send.send_nowait(change)

    @contextmanager
    def watch(self, name: str) -> Iterator[trio.MemoryReceiveChannel[Change]]:
        """Every change recorded on the handle called ``name`` while the block runs."""
        send, receive = trio.open_memory_channel[Change](WATCH_BUFFER)
        self._watchers.setdefault(name, []).append(send)
        try:
            yield receive
        finally:
            self._watchers[name].remove(send)
            if not self._watchers[name]:
                del self._watchers[name]


async def describe(handle: InstrumentHandle) -> list[Parameter]:
    """The parameters of ``handle``, each naming its channel."""
    parameters: Sequence[Parameter] = await handle.call("parameters")
    channel = handle.channel or ""
    return [p if p.channel == channel else replace(p, channel=channel) for p in parameters]


async def get_value(handle: InstrumentHandle, name: str) -> ParameterValue:
    parameter = find(await describe(handle), name, handle.name)
    if not parameter.readable:
        raise InvalidRequest(
            f"{handle.name}: {name} is write-only (the instrument cannot report it);"
            " its last set is on the stream " + f"{handle.name.split('/')[0]}/{STREAM}"
        )
    value: ParameterValue = await handle.call("get_parameter", name)
    return value


async def set_value(
    handle: InstrumentHandle,
    name: str,
    value: object,
    *,
    unit: str = "",
    guard: Guard | None = None,
    by: str = "rpc",
    log_to: ParameterLog | None = None,
) -> ParameterValue:
    """Set parameter ``name`` of ``handle`` (see the module docstring); the value it holds
    afterwards (read back when the instrument can report it)."""
    parameter = find(await describe(handle), name, handle.name)
    if not parameter.writable:
        raise InvalidRequest(f"{handle.name}: {name} is read-only")
    checked = coerce(parameter, value, unit)
    await handle.call("set_parameter", name, checked, guard=guard)
    held = checked
    if parameter.readable:
        held = await handle.call("get_parameter", name)
    if log_to is not None:
        change = Change(handle.name, name, held, parameter.unit, by, now())
        log_to.record(handle, parameter, change)
    log.info("%s: %s = %s %s (by %s)", handle.name, name, text_of(held), parameter.unit, by)
    return held


async def record_when_ready(
    supervisor: Supervisor,
    changes: trio.MemoryReceiveChannel[StateChange],
    log_to: ParameterLog,
) -> None:
    """Record every readable parameter of an instrument each time it becomes ready (by
    ``"open"``), so its stream says which settings held from the first batch on -- also
    those the lab config set, and after a restart, where the instrument may have reset.

    ``changes`` is the supervisor's state channel, subscribed before it starts."""
    async with changes, trio.open_nursery() as nursery:
        async for change in changes:
            if change.state is not State.READY:
                continue
            handle = supervisor.get(change.instrument)
            if "Configurable" in handle.capabilities:
                nursery.start_soon(_snapshot, handle, log_to)


async def _snapshot(handle: InstrumentHandle, log_to: ParameterLog) -> None:
    try:
        described = await describe(handle)
        for parameter in described:
            if parameter.readable:
                value = await handle.call("get_parameter", parameter.name)
                change = Change(handle.name, parameter.name, value, parameter.unit, "open", now())
                log_to.record(handle, parameter, change)
    except Exception as e:  # a fault now is the instrument's, and the supervisor's business
        log.info("%s: parameters not recorded at open: %s", handle.name, e)
