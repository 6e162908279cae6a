"""The script engine over RPC: upload WebAssembly, start runs, steer and follow them.

Only the holder of the full ``Lab`` reaches a :class:`ScriptEngineServer` (``Lab.scripts``):
a run may be granted any instrument of the lab, so handing the engine to someone who holds
one restricted, shared instrument would let them escape their restriction through a script.

A run belongs to the daemon's engine, not to the connection that started it: the session
nursery only hosts *waiting* for a run and *following* its log. So a client that cancels
its ``wait``, or disconnects, leaves the run going; only ``cancel`` stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import trio

from capabilities import InvalidRequest
from labd.aio import aio, to_trio
from labd.contract import schema
from labd.contract.errors import SCRIPT_FAILED, WireError, wire_errors
from labd.contract.runs import LAB_HOLDER
from labd.rpc.session import Session
from labd.rpc.subscriptions import SubscriptionServer
from labd.scripting import Grants, LogLine, Result, Run, ScriptEngine, ScriptFailed, ScriptVersion

log = logging.getLogger("labd.rpc")
_s: Any = schema.load()

LOG_BATCH = 500
"""Most log lines per ``LogSink.lines`` call; a client that keeps up gets them one by one."""


def failure_to_wire(exc: ScriptFailed) -> WireError:
    """``labd:script-failed:<code>: <message>``: the client raises ScriptFailed(code) again."""
    return WireError(f"{SCRIPT_FAILED}:{exc.code}", exc.message)


class ScriptEngineServer(_s.ScriptEngine.Server):  # type: ignore[misc]
    def __init__(self, session: Session, engine: ScriptEngine) -> None:
        self._session = session
        self._engine = engine

    @wire_errors
    async def upload(self, name: str, module: bytes, _context: Any, **_: Any) -> None:
        # Compiling takes a worker thread (seconds for a big module); a client that gives
        # up cancels only its wait, and a finished compile is stored either way.
        version = await to_trio(self._session.nursery, self._engine.store.upload, name, module)
        script_info_to(_context.results.info, version)

    @wire_errors
    async def scripts(self, _context: Any, **_: Any) -> None:
        store = self._engine.store
        versions = [v for name in store.names() for v in store.versions(name)]
        infos = _context.results.init("scripts", len(versions))
        for info, version in zip(infos, versions, strict=True):
            script_info_to(info, version)

    @wire_errors
    async def run(self, request: Any, **_: Any) -> Any:
        try:
            grants = Grants.parse(list(request.grants))
            limits = self._engine.default_limits.with_overrides(
                fuel=request.fuel or None,
                deadline_s=request.deadline or None,
                memory_bytes=request.memory or None,
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        run = self._engine.start(
            request.name,
            version=request.version or None,
            args={a.name: a.value for a in request.args},
            grants=grants,
            limits=limits,
        )
        log.info("%s started as run %d (grants: %s)", run.script.label, run.id, grants.describe())
        if self._session.services.data is not None:  # a run record (docs/runs.md)
            self._session.services.data.runs.record_script(run, LAB_HOLDER)
        return ScriptRunServer(self._session, run)

    @wire_errors
    async def runs(self, _context: Any, **_: Any) -> None:
        runs = self._engine.runs()
        infos = _context.results.init("runs", len(runs))
        for info, run in zip(infos, runs, strict=True):
            run_info_to(info, run)

    @wire_errors
    async def getRun(self, id: int, **_: Any) -> Any:
        return ScriptRunServer(self._session, self._engine.get_run(id))


class ScriptRunServer(_s.ScriptRun.Server):  # type: ignore[misc]
    """One run, as seen by one connection. Dropping it does not touch the run."""

    def __init__(self, session: Session, run: Run) -> None:
        self._session = session
        self._run = run

    @wire_errors
    async def info(self, _context: Any, **_: Any) -> None:
        run_info_to(_context.results.info, self._run)

    @wire_errors
    async def wait(self, _context: Any, **_: Any) -> None:
        try:
            # Waits in the session's nursery: cancelling the call cancels this wait only.
            await to_trio(self._session.nursery, self._run.wait)
        except ScriptFailed as exc:
            raise failure_to_wire(exc) from None
        run_info_to(_context.results.info, self._run)
        results_to(_context.results, self._run.results)

    @wire_errors
    async def cancel(self, **_: Any) -> None:
        self._run.cancel()

    @wire_errors
    async def pause(self, **_: Any) -> None:
        self._run.pause()

    @wire_errors
    async def resume(self, **_: Any) -> None:
        self._run.resume()

    @wire_errors
    async def followLog(self, sink: Any, **_: Any) -> Any:
        subscription = SubscriptionServer()
        self._session.nursery.start_soon(push_log, self._run, sink, subscription)
        return subscription

    @wire_errors
    async def results(self, _context: Any, **_: Any) -> None:
        results_to(_context.results, self._run.results)

    @wire_errors
    async def table(self, _context: Any, **_: Any) -> None:
        _context.results.arrow = table_bytes(self._run.table.to_arrow())


async def push_log(run: Run, sink: Any, subscription: SubscriptionServer) -> None:
    """Send ``run``'s log to ``sink`` in batches, one call in flight, then ``end``.

    The run appends to its own bounded log whatever happens here: this task follows it
    with its own cursor, so a slow client receives bigger batches (and, past the run's
    :data:`~labd.scripting.run.LOG_HISTORY`, misses the oldest lines) but never stalls
    the script.
    """
    send, receive = trio.open_memory_channel[LogLine](LOG_BATCH)

    async def follow() -> None:
        async with send:
            async for line in run.follow_log():
                await send.send(line)

    with subscription.scope:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                async with receive:
                    async for line in receive:
                        batch = [line]
                        while len(batch) < LOG_BATCH:
                            try:
                                batch.append(receive.receive_nowait())
                            except (trio.WouldBlock, trio.EndOfChannel):
                                break
                        await aio(lines_request(sink, batch).send())
                        subscription.sent += len(batch)
            request = sink.end_request()
            run_info_to(request.info, run)
            await aio(request.send())
        except Exception as exc:  # the client went away or its sink failed: stop following
            log.debug("log follower of run %d gone: %s", run.id, exc)


def lines_request(sink: Any, lines: Sequence[LogLine]) -> Any:
    request = sink.lines_request()
    entries = request.init("lines", len(lines))
    for entry, line in zip(entries, lines, strict=True):
        entry.timestamp = line.timestamp
        entry.level = line.level.name.lower()
        entry.text = line.text
    return request


def script_info_to(struct: Any, version: ScriptVersion) -> None:
    struct.name = version.name
    struct.version = version.version
    struct.sha256 = version.sha256
    struct.size = version.size
    struct.uploadedAt = version.uploaded_at
    struct.usesWasi = version.uses_wasi


def run_info_to(struct: Any, run: Run) -> None:
    struct.id = run.id
    struct.name = run.script.name
    struct.version = run.script.version
    struct.state = run.state.value
    if run.error is not None:
        struct.errorCode = run.error.code
        struct.errorMessage = run.error.message
    struct.fuelUsed = run.fuel_used or 0
    struct.startedAt = run.started_at or 0.0
    struct.endedAt = run.ended_at or 0.0
    struct.grants = run.grants.describe()


def table_bytes(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream (the client reads it back with ``pa.ipc``)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def results_to(struct: Any, results: Sequence[Result]) -> None:
    results = list(results)  # the guest thread may append meanwhile
    entries = struct.init("results", len(results))
    for entry, result in zip(entries, results, strict=True):
        entry.name = result.name
        entry.value = result.value
        entry.timestamp = result.timestamp
