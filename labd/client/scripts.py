"""Scripts on the daemon, from a client: upload WebAssembly, run it, follow and steer runs.

Async::

    async with connect() as lab:
        scripts = await lab.scripts()
        await scripts.upload("scan", Path("scan.wat").read_text())
        run = await scripts.run("scan", grants=["stage:Movable", "meter"], args={"steps": 41})
        async with run.log() as lines:
            async for line in lines:
                print(line)
        peak = (await run.wait())["peak_position"]   # raises ScriptFailed(code=...) on failure
        scan = (await run.table()).to_pandas()       # a row per result_row: position, power, ...

Blocking: ``lab.scripts()`` on a :class:`~labd.client.BlockingLab` gives the same methods
as plain calls (:class:`BlockingScripts`, :class:`BlockingRun`).

A run lives in the daemon: leaving ``wait`` early (a timeout, Ctrl-C) or disconnecting does
not stop it; :meth:`RunHandle.cancel` does.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import trio

from labd.aio import to_trio
from labd.client.feed import _Feed
from labd.client.portal import BlockingSubscription, _Handle
from labd.client.session import ClientSession
from labd.contract import schema

_s: Any = schema.load()


@dataclass(frozen=True)
class ScriptInfo:
    """One uploaded version of a script."""

    name: str
    version: int
    sha256: str
    size: int
    uploaded_at: float
    uses_wasi: bool


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    version: int
    state: str
    """``queued``, ``running``, ``paused``, ``succeeded``, ``failed`` or ``cancelled``."""
    error_code: str
    """How it failed (``out-of-fuel``, ``denied``, ...); empty unless failed or cancelled."""
    error_message: str
    fuel_used: int
    started_at: float | None
    ended_at: float | None
    grants: str

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @property
    def label(self) -> str:
        return f"script {self.name!r} v{self.version}"


@dataclass(frozen=True)
class LogEntry:
    timestamp: float
    level: str
    """``debug``, ``info``, ``warn`` or ``error``."""
    text: str

    def __str__(self) -> str:
        return f"{self.level:5} {self.text}"


@dataclass(frozen=True)
class ScriptResult:
    name: str
    value: float
    timestamp: float


class _LogSink(_s.LogSink.Server):  # type: ignore[misc]
    """Receives the daemon's batches of log lines; returns once the reader has room, which
    is all the flow control needed (the daemon sends one batch at a time)."""

    def __init__(self, nursery: trio.Nursery, send: trio.MemorySendChannel[Any]) -> None:
        self._nursery = nursery
        self._send = send

    async def lines(self, lines: Any, **_: Any) -> None:
        batch = [LogEntry(e.timestamp, e.level, e.text) for e in lines]
        await to_trio(self._nursery, self._send.send, batch)

    async def end(self, info: Any, **_: Any) -> None:
        await to_trio(self._nursery, self._send.send, run_info_from(info))
        self._send.close()


class RunLog(_Feed):
    """``async with run.log() as lines: async for line in lines`` — every line the run
    keeps, then new ones live; ends with the run (``final`` then holds its outcome)."""

    final: RunInfo | None = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._pending: deque[LogEntry] = deque()

    async def __aenter__(self) -> RunLog:
        await super().__aenter__()
        return self

    def __aiter__(self) -> RunLog:
        return self

    async def __anext__(self) -> LogEntry:
        while not self._pending:
            item = await self._next()
            if isinstance(item, RunInfo):
                self.final = item
            else:
                self._pending.extend(item)
        return self._pending.popleft()


class RunHandle:
    """One run on the daemon. Dropping the handle leaves the run alone."""

    def __init__(self, link: ClientSession, cap: Any) -> None:
        self._link = link
        self._cap = cap

    async def info(self) -> RunInfo:
        return run_info_from((await self._link.call(self._cap.info)).info)

    async def wait(self) -> dict[str, float]:
        """Wait for the end; the last value of each result. Raises
        :class:`~labd.scripting.ScriptFailed` (with its ``code``) if the run failed.
        Cancelling this wait leaves the run going."""
        result = await self._link.call(self._cap.wait)
        return {r.name: r.value for r in result.results}

    async def cancel(self) -> None:
        await self._link.call(self._cap.cancel)

    async def pause(self) -> None:
        """Pause at the script's next ``checkpoint`` (``info().state`` becomes ``paused``)."""
        await self._link.call(self._cap.pause)

    async def resume(self) -> None:
        await self._link.call(self._cap.resume)

    async def results(self) -> list[ScriptResult]:
        """Every result reported so far, in order (also while running, also after failure)."""
        result = await self._link.call(self._cap.results)
        return [ScriptResult(r.name, r.value, r.timestamp) for r in result.results]

    async def table(self) -> pa.Table:
        """The rows the script emitted with ``result_row`` so far (also of a failed run):
        a float64 column per name, in the order of its first row (``.to_pandas()``)."""
        result = await self._link.call(self._cap.table)
        return table_from(result.arrow)

    def log(self) -> RunLog:
        return RunLog(self._link, lambda sink: self._cap.followLog(sink), _LogSink)


class Scripts:
    """The daemon's script engine (``await lab.scripts()``)."""

    def __init__(self, link: ClientSession, cap: Any) -> None:
        self._link = link
        self._cap = cap

    async def upload(self, name: str, module: bytes | str) -> int:
        """Store ``module`` (a WebAssembly binary or WAT text) as the next version of
        ``name``; returns that version. Raises :class:`~labd.scripting.ScriptInvalid`
        with the reason when the daemon cannot use it."""
        data = module.encode() if isinstance(module, str) else bytes(module)
        result = await self._link.call(lambda: self._cap.upload(name, data))
        return int(result.info.version)

    async def install(self, name: str, module: bytes) -> tuple[int, bool]:
        """The version of ``name`` that holds ``module``: its newest if that is the same
        module (re-running a file does not pile up identical versions), else a fresh
        upload. Returns (version, whether it was uploaded now)."""
        digest = hashlib.sha256(module).hexdigest()
        stored = [v for v in await self.versions() if v.name == name]
        if stored and stored[-1].sha256 == digest:
            return stored[-1].version, False
        return await self.upload(name, module), True

    async def versions(self) -> list[ScriptInfo]:
        """Every stored version of every script."""
        result = await self._link.call(self._cap.scripts)
        return [
            ScriptInfo(s.name, s.version, s.sha256, s.size, s.uploadedAt, s.usesWasi)
            for s in result.scripts
        ]

    async def run(
        self,
        name: str,
        *,
        version: int | None = None,
        args: Mapping[str, object] | None = None,
        grants: Iterable[str] = (),
        fuel: int | None = None,
        deadline_s: float | None = None,
        memory_bytes: int | None = None,
    ) -> RunHandle:
        """Start ``name`` (its newest version unless ``version``) and return at once.

        ``grants`` as for ``labd run --grant``: ``"stage:Movable"``, ``"meter"`` (every
        capability of meter), ``"*"``. Limits left None take the daemon's defaults.
        """
        request = run_request(name, version, args, grants, fuel, deadline_s, memory_bytes)
        result = await self._link.call(lambda: self._cap.run(request))
        return RunHandle(self._link, result.run)

    async def runs(self) -> list[RunInfo]:
        """Runs in progress and the recently finished ones."""
        result = await self._link.call(self._cap.runs)
        return [run_info_from(r) for r in result.runs]

    def get_run(self, run_id: int) -> RunHandle:
        """A handle on run ``run_id`` (e.g. one another client started)."""
        return RunHandle(self._link, self._cap.getRun(run_id).run)


def load_module(path: Path | str) -> bytes:
    """The WebAssembly module for a script file, compiled here on the client if it is
    source (.wat, .c, .rs, .zig; see :func:`labd.scripting.compile.compile_source`).
    Blocks for as long as the compiler takes: call it in a worker thread from async code."""
    from labd.scripting.compile import compile_source  # loads wasmtime: only when used

    return compile_source(path)


def run_request(
    name: str,
    version: int | None,
    args: Mapping[str, object] | None,
    grants: Iterable[str],
    fuel: int | None,
    deadline_s: float | None,
    memory_bytes: int | None,
) -> Any:
    request = _s.RunRequest.new_message(
        name=name,
        version=version or 0,
        grants=list(grants),
        fuel=fuel or 0,
        deadline=deadline_s or 0.0,
        memory=memory_bytes or 0,
    )
    items = list((args or {}).items())
    for entry, (key, value) in zip(request.init("args", len(items)), items, strict=True):
        entry.name, entry.value = key, str(value)
    return request


def table_from(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def run_info_from(info: Any) -> RunInfo:
    return RunInfo(
        id=info.id,
        name=info.name,
        version=info.version,
        state=info.state,
        error_code=info.errorCode,
        error_message=info.errorMessage,
        fuel_used=info.fuelUsed,
        started_at=info.startedAt or None,
        ended_at=info.endedAt or None,
        grants=info.grants,
    )


# ---------------------------------------------------------------- blocking facade


class BlockingRunLog(BlockingSubscription):
    def __next__(self) -> LogEntry:
        entry: LogEntry = super().__next__()
        return entry

    @property
    def final(self) -> RunInfo | None:
        """The run's outcome, once the log has ended."""
        portal, key = self._portal, self._key
        final: RunInfo | None = portal.run_sync(lambda: portal.get(key).final)
        return final


class BlockingRun(_Handle):
    """:class:`RunHandle` with blocking calls."""

    def info(self) -> RunInfo:
        info: RunInfo = self._call("info")
        return info

    def wait(self, timeout: float | None = None) -> dict[str, float]:
        """As :meth:`RunHandle.wait`; TimeoutError after ``timeout`` s (the run goes on)."""
        portal, key = self._portal, self._key

        async def wait() -> dict[str, float]:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                results: dict[str, float] = await portal.get(key).wait()
                return results

        try:
            results: dict[str, float] = portal.run(wait)
        except trio.TooSlowError:
            raise TimeoutError(f"the run did not finish within {timeout:g} s") from None
        return results

    def cancel(self) -> None:
        self._call("cancel")

    def pause(self) -> None:
        self._call("pause")

    def resume(self) -> None:
        self._call("resume")

    def results(self) -> list[ScriptResult]:
        results: list[ScriptResult] = self._call("results")
        return results

    def table(self) -> pa.Table:
        """As :meth:`RunHandle.table`."""
        table: pa.Table = self._call("table")
        return table

    def log(self) -> BlockingRunLog:
        """Iterate for :class:`LogEntry` lines until the run ends; ``close()`` to stop early."""

        async def enter(run: RunHandle) -> RunLog:
            return await run.log().__aenter__()

        return BlockingRunLog(self._portal, self._derive_async(enter))

    def lines(self) -> Iterator[LogEntry]:
        """Every log line until the run ends (the follower closes itself)."""
        with self.log() as lines:
            yield from lines


class BlockingScripts(_Handle):
    """:class:`Scripts` with blocking calls (``lab.scripts()`` on a BlockingLab)."""

    def upload(self, name: str, module: bytes | str) -> int:
        version: int = self._call("upload", name, module)
        return version

    def install(self, name: str, module: bytes) -> tuple[int, bool]:
        installed: tuple[int, bool] = self._call("install", name, module)
        return installed

    def versions(self) -> list[ScriptInfo]:
        versions: list[ScriptInfo] = self._call("versions")
        return versions

    def runs(self) -> list[RunInfo]:
        runs: list[RunInfo] = self._call("runs")
        return runs

    def run(
        self,
        name: str,
        *,
        version: int | None = None,
        args: Mapping[str, object] | None = None,
        grants: Iterable[str] = (),
        fuel: int | None = None,
        deadline_s: float | None = None,
        memory_bytes: int | None = None,
    ) -> BlockingRun:
        grants = list(grants)
        key = self._derive_async(
            lambda scripts: scripts.run(
                name,
                version=version,
                args=args,
                grants=grants,
                fuel=fuel,
                deadline_s=deadline_s,
                memory_bytes=memory_bytes,
            )
        )
        return BlockingRun(self._portal, key)

    def get_run(self, run_id: int) -> BlockingRun:
        return BlockingRun(self._portal, self._derive(lambda scripts: scripts.get_run(run_id)))
