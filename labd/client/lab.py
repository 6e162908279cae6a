"""The async client: ``async with connect() as lab`` and everything reachable from it.

Runs in Trio code under :func:`labd.aio.run`. For plain scripts and notebooks use the
blocking facade, :mod:`labd.client.blocking`, which wraps exactly these objects.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import pyarrow as pa
import trio

from capabilities import Frame, Reading
from labd import records
from labd.aio import to_trio
from labd.client.bulk import BulkReader, BulkUnavailable
from labd.client.errors import ConnectionLost
from labd.client.feed import _deliver, _Feed
from labd.client.parameters import Parameters
from labd.client.remote import REMOTES
from labd.client.replay import (
    CHUNK_BYTES,
    WINDOW,
    DataInfo,
    Replay,
    data_info_from_wire,
    replay_table,
)
from labd.client.scripts import Scripts
from labd.client.session import ClientSession, open_session
from labd.contract import schema
from labd.contract.address import default_socket_path, parse_address, read_token, token_path_for
from labd.contract.bulk import BULK_UNAVAILABLE
from labd.contract.errors import WireError
from labd.contract.lanes import LANE_UNAVAILABLE, LaneReader
from labd.contract.restriction import Restriction
from labd.contract.runs import FAILED, SUCCEEDED, RunRecord, RunSummary
from labd.errors import CapabilityMissing

T = TypeVar("T")
_s: Any = schema.load()


@dataclass(frozen=True)
class InstrumentInfo:
    name: str
    driver: str
    capabilities: list[str]
    state: str
    """``starting``, ``ready``, ``busy``, ``faulted``, ``restarting`` or ``stopped``."""
    reason: str
    restarts: int
    streams: list[str]
    last_fault: str = ""
    """The most recent fault's reason, kept after the instrument recovered; empty: none."""
    last_fault_at: float | None = None
    """When that fault happened (seconds since the epoch); None: never faulted."""


@dataclass(frozen=True)
class StreamInfo:
    name: str
    kind: str
    last_seq: int


@dataclass(frozen=True)
class StateChange:
    instrument: str
    state: str
    reason: str
    timestamp: float


@dataclass(frozen=True)
class ShareInfo:
    token: str
    instrument: str
    read_only: bool
    expires_at: float | None
    revoked: bool


class Message(NamedTuple):
    """One pushed batch: the stream's sequence number (gaps = skipped batches) and the data."""

    seq: int
    batch: pa.RecordBatch

    def frame(self) -> Frame:
        return records.frame_from_batch(self.batch)

    def readings(self) -> list[Reading]:
        return records.readings_from_batch(self.batch)


class _Sink(_s.BatchSink.Server):  # type: ignore[misc]
    """Receives pushes; each push returns only once the consumer has room (back-pressure
    that makes the daemon skip to the latest batch instead of queueing)."""

    def __init__(
        self, nursery: trio.Nursery, send: trio.MemorySendChannel[Any], link: ClientSession
    ) -> None:
        self._nursery = nursery
        self._send = send
        self.lanes = LaneReader()
        self.bulk = BulkReader(link.address.host, link.ssl_context, link.server_hostname)

    async def push(self, seq: int, batch: Any, shared: Any, bulk: Any, **_: Any) -> None:
        # Either way ``batch`` ends up a copy owned by the consumer: the message (or the
        # shared-memory slot) it came in is reused once this returns.
        if shared.length:
            try:
                batch = self.lanes.read(shared.path, shared.offset, shared.length)
            except OSError as exc:
                raise WireError(LANE_UNAVAILABLE, f"cannot map {shared.path}: {exc}") from None
        elif bulk.length:
            try:
                batch = await self.bulk.read(seq, bulk.length)
            except BulkUnavailable as exc:
                raise WireError(BULK_UNAVAILABLE, str(exc)) from None
        elif bulk.port:
            self.bulk.connect(bulk.port, bytes(bulk.token))
        await to_trio(self._nursery, _deliver, self._send, (seq, batch))


class _Watcher(_s.StateWatcher.Server):  # type: ignore[misc]
    def __init__(self, nursery: trio.Nursery, send: trio.MemorySendChannel[Any]) -> None:
        self._nursery = nursery
        self._send = send

    async def changed(self, change: Any, **_: Any) -> None:
        item = StateChange(change.instrument, str(change.state), change.reason, change.timestamp)
        await to_trio(self._nursery, _deliver, self._send, item)


class Subscription(_Feed):
    """``async with lab.subscribe("camera/frames") as sub: async for msg in sub: ...``"""

    async def __aenter__(self) -> Subscription:
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        if self._endpoint is not None:
            self._endpoint.lanes.close()
            self._endpoint.bulk.close()

    @property
    def bulk_batches(self) -> int:
        """How many batches came on the bulk connection (:mod:`labd.rpc.bulk`) so far."""
        return self._endpoint.bulk.batches if self._endpoint is not None else 0

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        seq, data = await self._next()
        return Message(seq, records.batch_from_ipc(data))


class StateWatch(_Feed):
    async def __aenter__(self) -> StateWatch:
        await super().__aenter__()
        return self

    def __aiter__(self) -> StateWatch:
        return self

    async def __anext__(self) -> StateChange:
        change: StateChange = await self._next()
        return change


class Revoker:
    def __init__(self, link: ClientSession, cap: Any) -> None:
        self._link = link
        self._cap = cap

    async def revoke(self) -> None:
        await self._link.call(self._cap.revoke)


class Instrument:
    """One instrument (possibly a restricted view of one). Its capabilities are typed."""

    def __init__(self, link: ClientSession, cap: Any, name: str | None = None) -> None:
        self._link = link
        self._cap = cap
        self.name = name
        self._caps: Any = None
        self._parameters: Parameters | None = None

    @property
    def parameters(self) -> Parameters:
        """Its settings by name: ``await inst.parameters["gain"].set(4)`` (docs/parameters.md)."""
        if self._parameters is None:
            self._parameters = Parameters(self)
        return self._parameters

    async def info(self) -> InstrumentInfo:
        info = info_from_wire((await self._link.call(self._cap.info)).info)
        self.name = info.name
        return info

    async def capabilities(self) -> list[str]:
        caps = await self._wire_capabilities()
        return [name for name, (fld, _) in REMOTES.items() if caps._has(fld)]

    async def get(self, capability: type[T]) -> T:
        """The instrument's ``capability`` as an object satisfying that Protocol.

        Raises :class:`~labd.errors.CapabilityMissing` if the instrument lacks it.
        """
        name = capability.__name__
        if name not in REMOTES:
            raise ValueError(f"{name} is not a capability; known: {', '.join(REMOTES)}")
        fld, remote = REMOTES[name]
        caps = await self._wire_capabilities()
        if not caps._has(fld):
            have = [n for n, (f, _) in REMOTES.items() if caps._has(f)]
            raise CapabilityMissing(
                f"{self.name or 'this instrument'} is not {name}"
                f" (its capabilities: {', '.join(have) or 'none'})"
            )
        return cast(T, remote(self._link, getattr(caps, fld)))

    async def restrict(self, restriction: Restriction) -> Instrument:
        """A weaker capability on the same instrument (for yourself or to pass on)."""
        wire_restriction = restriction.to_wire()
        result = await self._link.call(lambda: self._cap.restrict(wire_restriction))
        return Instrument(self._link, result.instrument, self.name)

    async def share(self, restriction: Restriction | None = None) -> tuple[str, Revoker]:
        """A sharing token a collaborator redeems (:func:`redeem`), and its revoker."""
        wire_restriction = (restriction or Restriction()).to_wire()
        result = await self._link.call(lambda: self._cap.share(wire_restriction))
        return str(result.token), Revoker(self._link, result.revoker)

    def subscribe(
        self,
        stream: str,
        *,
        max_rate: float = 0.0,
        window: int = 2,
        shared_memory: bool | None = None,
        bulk: bool | None = None,
    ) -> Subscription:
        """One of this instrument's streams (``"position"`` or ``"stage/position"``).

        See :meth:`Lab.subscribe` for the options.
        """
        return _subscribe(self._link, self._cap, stream, max_rate, window, shared_memory, bulk)

    def run(self, name: str, /, **metadata: object) -> Run:
        """A run recorded as this holder's (a share's holder: the share); see :meth:`Lab.run`."""
        return Run(self._link, self._cap, name, metadata)

    async def _wire_capabilities(self) -> Any:
        if self._caps is None:
            self._caps = (await self._link.call(self._cap.capabilities)).capabilities
        return self._caps


class Lab:
    """The whole lab, as unlocked with the daemon's token."""

    def __init__(self, link: ClientSession, cap: Any) -> None:
        self._link = link
        self._cap = cap

    @property
    def address(self) -> str:
        return str(self._link.address)

    async def instruments(self) -> list[InstrumentInfo]:
        result = await self._link.call(self._cap.instruments)
        return [info_from_wire(i) for i in result.instruments]

    def instrument(self, name: str) -> Instrument:
        """The instrument called ``name`` (an unknown name fails on first use).

        No round trip: Cap'n Proto pipelines the calls made on it behind this one.
        """
        return Instrument(self._link, self._cap.instrument(name).instrument, name)

    async def streams(self) -> list[StreamInfo]:
        result = await self._link.call(self._cap.streams)
        return [StreamInfo(s.name, s.kind, s.lastSeq) for s in result.streams]

    def subscribe(
        self,
        stream: str,
        *,
        max_rate: float = 0.0,
        window: int = 2,
        shared_memory: bool | None = None,
        bulk: bool | None = None,
    ) -> Subscription:
        """Push the newest batches of ``stream``, at most ``max_rate`` per second (0: all).

        ``window``: pushes in flight (more hides latency, costs that many batches of
        memory). ``shared_memory``: take big batches (frames) through shared memory, two
        copies instead of six (:mod:`labd.rpc.lanes`); default: when on the unix socket.
        ``bulk``: take big batches on a second connection to the daemon, outside the
        Cap'n Proto message (:mod:`labd.rpc.bulk`); default: when on TCP or TLS.
        """
        return _subscribe(self._link, self._cap, stream, max_rate, window, shared_memory, bulk)

    def watch_states(self) -> StateWatch:
        return StateWatch(self._link, lambda watcher: self._cap.watchStates(watcher), _Watcher)

    async def shares(self) -> list[ShareInfo]:
        result = await self._link.call(self._cap.shares)
        return [
            ShareInfo(s.token, s.instrument, s.readOnly, s.expiresAt or None, s.revoked)
            for s in result.shares
        ]

    async def revoke(self, token: str) -> None:
        await self._link.call(lambda: self._cap.revoke(token))

    async def scripts(self) -> Scripts:
        """The daemon's script engine: upload and run WebAssembly experiment scripts."""
        result = await self._link.call(self._cap.scripts)
        return Scripts(self._link, result.engine)

    def replay_batches(
        self,
        stream: str,
        start: float,
        end: float,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        window: int = WINDOW,
    ) -> Replay:
        """``(seq, batch)`` of every batch of ``stream`` with timestamps in [start, end]
        (seconds since the epoch), in order, from the daemon's ring and files
        (see :mod:`labd.client.replay`)."""
        return Replay(
            self._link, self._cap, stream, start, end, chunk_bytes=chunk_bytes, window=window
        )

    async def replay(self, stream: str, start: float, end: float) -> pa.Table:
        """The batches of ``stream`` in [start, end] as one table (empty: none there)."""
        return await replay_table(self.replay_batches(stream, start, end))

    async def data_info(self) -> DataInfo:
        """Where the daemon keeps recorded data (rings, files) and how persisting goes."""
        return data_info_from_wire((await self._link.call(self._cap.dataInfo)).info)

    def run(self, name: str, /, **metadata: object) -> Run:
        """``async with lab.run("focus scan", sample="A12") as run:`` records a run
        (docs/runs.md): opened on entry, closed at the end of the block (``failed``, with
        the exception, if one left it), or as ``disconnected`` if the connection ends first."""
        return Run(self._link, self._cap, name, metadata)

    async def runs(self) -> list[RunSummary]:
        """Every run the daemon has recorded, oldest first."""
        result = await self._link.call(self._cap.runs)
        return [
            RunSummary(r.id, r.name, r.who, r.startedAt, r.endedAt or None, r.outcome, r.script)
            for r in result.runs
        ]

    async def get_run(self, run_id: str) -> RunRecord:
        """One run's whole record."""
        result = await self._link.call(lambda: self._cap.getRun(run_id))
        return RunRecord.from_json(result.record)

    def replay_run_batches(
        self, run_id: str, stream: str, *, chunk_bytes: int = CHUNK_BYTES, window: int = WINDOW
    ) -> Replay:
        """``(seq, batch)`` of every batch of ``stream`` that run ``run_id`` covers."""
        return _RunReplay(
            self._link, self._cap, run_id, stream, chunk_bytes=chunk_bytes, window=window
        )

    async def replay_run(self, run_id: str, stream: str) -> pa.Table:
        """The batches of ``stream`` that run ``run_id`` covers, as one table."""
        return await replay_table(self.replay_run_batches(run_id, stream))


class Run:
    """A run this client opened: ``async with lab.run(name, **metadata) as run``;
    :attr:`id` is known inside the block."""

    def __init__(
        self, link: ClientSession, owner: Any, name: str, metadata: dict[str, object]
    ) -> None:
        self._link = link
        self._owner = owner
        self.name = name
        self._metadata = {str(k): str(v) for k, v in metadata.items()}
        self._cap: Any = None
        self.id = ""

    async def __aenter__(self) -> Run:
        def send() -> Any:
            request = self._owner.openRun_request()
            request.name = self.name
            entries = request.init("metadata", len(self._metadata))
            for entry, (key, value) in zip(entries, self._metadata.items(), strict=True):
                entry.name, entry.value = key, value
            return request.send()

        self._cap = (await self._link.call(send)).run
        self.id = str((await self._link.call(self._cap.id)).id)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: object, tb: object
    ) -> None:
        outcome, error = (SUCCEEDED, "") if exc_type is None else (FAILED, _describe(exc))
        cap, self._cap = self._cap, None
        if cap is None:
            return
        # Also when the block was cancelled; a lost connection has closed it already
        # (as "disconnected", on the daemon's side).
        with trio.CancelScope(shield=True), contextlib.suppress(ConnectionLost):
            await self._link.call(lambda: cap.close(outcome, error))


def _describe(exc: object) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _RunReplay(Replay):
    """A :class:`Replay` of the batches a run covers (``Lab.replayRun``)."""

    def __init__(
        self, link: ClientSession, lab_cap: Any, run_id: str, stream: str, **options: int
    ) -> None:
        super().__init__(link, lab_cap, stream, 0.0, 0.0, **options)
        self._run_id = run_id

    async def __aenter__(self) -> Replay:
        stream = self._request[0]
        result = await self._link.call(lambda: self._lab_cap.replayRun(self._run_id, stream))
        self.schema = pa.ipc.read_schema(pa.py_buffer(result.arrowSchema))
        self._cursor = result.cursor
        return self


def _subscribe(
    link: ClientSession,
    cap: Any,
    stream: str,
    max_rate: float,
    window: int,
    shared_memory: bool | None,
    bulk: bool | None,
) -> Subscription:
    local = link.local if shared_memory is None else shared_memory
    remote = not link.local if bulk is None else bulk
    return Subscription(
        link,
        lambda sink: cap.subscribe(stream, sink, max_rate, window, local, remote),
        lambda nursery, send: _Sink(nursery, send, link),
    )


def info_from_wire(info: Any) -> InstrumentInfo:
    return InstrumentInfo(
        name=info.name,
        driver=info.driver,
        capabilities=list(info.capabilities),
        state=str(info.state),
        reason=info.reason,
        restarts=info.restarts,
        streams=list(info.streams),
        last_fault=info.lastFault,
        last_fault_at=info.lastFaultAt or None,
    )


def resolve_address(address: str | None) -> str:
    """``address``, else ``$LABD_ADDRESS``, else the local default socket."""
    return address or os.environ.get("LABD_ADDRESS") or str(default_socket_path())


def resolve_token(address: str, token: str | None, token_file: str | None) -> str:
    """The lab token: given, ``$LABD_TOKEN``, a token file, or the one next to the socket."""
    if token:
        return token
    if os.environ.get("LABD_TOKEN"):
        return os.environ["LABD_TOKEN"]
    if token_file:
        return read_token(Path(token_file))
    parsed = parse_address(address)
    path = token_path_for(parsed.path if parsed.path else default_socket_path())
    return read_token(path)


@contextlib.asynccontextmanager
async def connect(
    address: str | None = None,
    *,
    token: str | None = None,
    token_file: str | None = None,
    tls_ca: str | None = None,
    server_hostname: str | None = None,
) -> AsyncIterator[Lab]:
    """Connect to a daemon and unlock its lab.

    ``address``: a socket path, ``HOST:PORT`` or ``tls://HOST:PORT`` (default: the local
    daemon's socket). The token is read from next to the socket unless given (remote
    clients pass ``token=`` or set ``$LABD_TOKEN``). ``tls_ca``: the certificate (or CA)
    to trust for ``tls://``.
    """
    address = resolve_address(address)
    async with open_session(address, tls_ca=tls_ca, server_hostname=server_hostname) as link:
        secret = resolve_token(address, token, token_file)
        bootstrap = link.bootstrap
        result = await link.call(lambda: bootstrap.unlock(secret))
        yield Lab(link, result.lab)


@contextlib.asynccontextmanager
async def redeem(
    share_token: str,
    address: str | None = None,
    *,
    tls_ca: str | None = None,
    server_hostname: str | None = None,
) -> AsyncIterator[Instrument]:
    """Connect with a sharing token (no lab token needed) and get the shared instrument."""
    address = resolve_address(address)
    async with open_session(address, tls_ca=tls_ca, server_hostname=server_hostname) as link:
        bootstrap = link.bootstrap
        result = await link.call(lambda: bootstrap.redeem(share_token))
        instrument = Instrument(link, result.instrument)
        await instrument.info()
        yield instrument
