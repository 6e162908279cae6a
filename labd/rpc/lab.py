"""The capability graph a connection walks: Bootstrap → Lab → Instrument → capabilities.

A fresh connection holds only the :class:`BootstrapServer`. It yields the full
:class:`LabServer` for the daemon's token, or one restricted :class:`InstrumentServer`
for a sharing token; nothing else is reachable without one of those.
"""

from __future__ import annotations

import functools
import hmac
import importlib.metadata
from typing import TYPE_CHECKING, Any

import trio

from capabilities import InvalidRequest, PermissionDenied
from labd import parameters
from labd.aio import to_trio
from labd.contract import schema
from labd.contract.errors import wire_errors
from labd.contract.restriction import Restriction
from labd.contract.runs import (
    DISCONNECTED,
    FAILED,
    LAB_HOLDER,
    RUNNING,
    SUCCEEDED,
    RunRecord,
    RunSummary,
)
from labd.errors import LabdError
from labd.rpc.admission import Gate
from labd.rpc.capability_servers import Target, fill_capabilities, granted
from labd.rpc.policy import Policy, ShareRegistry
from labd.rpc.replay import RecordedData, fill_data_info, open_replay, open_run_replay
from labd.rpc.session import Session
from labd.rpc.subscriptions import SubscriptionServer, push_states, push_stream
from labd.streams import StreamHub
from labd.supervisor import InstrumentHandle

if TYPE_CHECKING:
    from labd.runs import RunBook

_s: Any = schema.load()

PROTOCOL_VERSION = 1


ROOT = Policy()


class BootstrapServer(_s.Bootstrap.Server):  # type: ignore[misc]
    """What a fresh connection holds. A right token authenticates the connection (its
    :class:`~labd.rpc.admission.Gate` lifts the pre-authentication limits); a wrong one
    costs time and, repeated, the connection (:class:`~labd.rpc.admission.WrongTokens`)."""

    def __init__(self, session: Session, gate: Gate) -> None:
        self._session = session
        self._gate = gate

    @wire_errors
    async def unlock(self, token: str, **_: Any) -> Any:
        services = self._session.services
        if not hmac.compare_digest(token.encode(), services.lab_token.encode()):
            await self._gate.wrong_token()
            raise PermissionDenied(
                f"wrong lab token; the daemon's token is in {services.token_hint}"
                " (readable by the user running the daemon)"
            )
        self._gate.authenticate()
        return LabServer(self._session)

    @wire_errors
    async def redeem(self, shareToken: str, **_: Any) -> Any:
        try:
            share = self._session.services.shares.redeem(shareToken)
        except PermissionDenied:
            await self._gate.wrong_token()
            raise
        handle = self._session.services.supervisor.get(share.instrument)
        self._gate.authenticate()
        return InstrumentServer(self._session, handle, share.policy)

    async def version(self, **_: Any) -> tuple[int, str]:
        return PROTOCOL_VERSION, _daemon_version()


@functools.cache
def _daemon_version() -> str:
    """Read once: ``version`` may be called before authentication, as often as a peer likes."""
    return importlib.metadata.version("labd")


class LabServer(_s.Lab.Server):  # type: ignore[misc]
    def __init__(self, session: Session) -> None:
        self._session = session

    @wire_errors
    async def instruments(self, _context: Any, **_: Any) -> None:
        handles = self._session.services.supervisor.handles()
        infos = _context.results.init("instruments", len(handles))
        for info, handle in zip(infos, handles, strict=True):
            fill_info(info, handle, self._session.services.streams)

    @wire_errors
    async def instrument(self, name: str, **_: Any) -> Any:
        handle = self._session.services.supervisor.get(name)
        return InstrumentServer(self._session, handle, ROOT)

    @wire_errors
    async def watchStates(self, watcher: Any, **_: Any) -> Any:
        subscription = SubscriptionServer()
        self._session.nursery.start_soon(
            push_states, self._session.services.supervisor, watcher, subscription
        )
        return subscription

    @wire_errors
    async def streams(self, _context: Any, **_: Any) -> None:
        hub = self._session.services.streams
        names = hub.names()
        infos = _context.results.init("streams", len(names))
        for info, name in zip(infos, names, strict=True):
            stream = hub.stream(name)
            info.name, info.kind, info.lastSeq = name, stream.kind, stream.seq

    @wire_errors
    async def subscribe(
        self,
        stream: str,
        sink: Any,
        maxRate: float,
        window: int,
        sharedMemory: bool,
        bulk: bool = False,
        **_: Any,
    ) -> Any:
        return start_subscription(
            self._session,
            stream,
            sink,
            maxRate,
            window,
            ROOT,
            shared_memory=sharedMemory,
            bulk=bulk,
        )

    @wire_errors
    async def shares(self, _context: Any, **_: Any) -> None:
        shares = self._session.services.shares.list()
        infos = _context.results.init("shares", len(shares))
        for info, share in zip(infos, shares, strict=True):
            info.token = share.token
            info.instrument = share.instrument
            info.readOnly = share.policy.effective_read_only
            info.expiresAt = share.policy.effective_expiry or 0.0
            info.revoked = share.policy.revoked

    @wire_errors
    async def revoke(self, token: str, **_: Any) -> None:
        self._session.services.shares.revoke(token)

    @wire_errors
    async def scripts(self, **_: Any) -> Any:
        engine = self._session.services.scripts
        if engine is None:
            raise LabdError("this labd server has no script engine")
        # Imported on first use: it loads wasmtime, which a daemon without scripts skips.
        from labd.rpc.scripts import ScriptEngineServer

        return ScriptEngineServer(self._session, engine)

    @wire_errors
    async def replay(self, stream: str, start: float, end: float, **_: Any) -> tuple[Any, bytes]:
        return open_replay(self._session, self._session.services.data, stream, start, end)

    @wire_errors
    async def dataInfo(self, _context: Any, **_: Any) -> None:
        fill_data_info(_context.results.info, self._session.services.data)

    @wire_errors
    async def openRun(self, name: str, metadata: Any, **_: Any) -> Any:
        return await open_run(self._session, name, metadata, LAB_HOLDER)

    @wire_errors
    async def runs(self, _context: Any, **_: Any) -> None:
        records = recorded(self._session).runs.list()
        infos = _context.results.init("runs", len(records))
        for info, record in zip(infos, records, strict=True):
            summary = RunSummary.of(record)
            info.id, info.name, info.who = summary.id, summary.name, summary.who
            info.startedAt, info.endedAt = summary.started, summary.ended or 0.0
            info.outcome, info.script = summary.outcome, summary.script

    @wire_errors
    async def getRun(self, id: str, **_: Any) -> str:
        return recorded(self._session).runs.get(id).to_json()

    @wire_errors
    async def replayRun(self, id: str, stream: str, **_: Any) -> tuple[Any, bytes]:
        data = recorded(self._session)
        return open_run_replay(self._session, data, data.runs.get(id), stream)


class InstrumentServer(_s.Instrument.Server):  # type: ignore[misc]
    """One instrument under one policy (the root policy for the lab's owner)."""

    def __init__(self, session: Session, handle: InstrumentHandle, policy: Policy) -> None:
        self._session = session
        self._handle = handle
        self._policy = policy

    @wire_errors
    async def info(self, _context: Any, **_: Any) -> None:
        self._policy.check_alive()
        info = _context.results.info
        fill_info(info, self._handle, self._session.services.streams)
        info.capabilities = granted(self._handle, self._policy)

    @wire_errors
    async def capabilities(self, _context: Any, **_: Any) -> None:
        self._policy.check_alive()
        services = self._session.services
        target = Target(self._handle, self._policy, self._session.nursery, services.parameters)
        fill_capabilities(_context.results.capabilities, target)

    @wire_errors
    async def restrict(self, restriction: Any, **_: Any) -> Any:
        self._policy.check_alive()
        child = self._policy.derive(await self._checked(restriction))
        return InstrumentServer(self._session, self._handle, child)

    @wire_errors
    async def share(self, restriction: Any, **_: Any) -> tuple[str, Any]:
        self._policy.check_alive()
        child = self._policy.derive(await self._checked(restriction))
        shares = self._session.services.shares
        share = shares.share(self._handle.name, child)
        return share.token, RevokerServer(shares, share.token)

    async def _checked(self, wire: Any) -> Restriction:
        """The restriction asked for, its parameter limits naming parameters the instrument
        has (a typo would otherwise limit nothing, silently)."""
        restriction = Restriction.from_wire(wire)
        if restriction.parameters:
            known: set[str] = set()
            if "Configurable" in self._handle.capabilities:
                described = await to_trio(
                    self._session.nursery, lambda: parameters.describe(self._handle)
                )
                known = {p.name for p in described}
            for name in restriction.parameters:
                if name not in known:
                    raise InvalidRequest(
                        f"cannot limit parameter {name!r}: {self._handle.name} has no such"
                        f" parameter (its parameters: {', '.join(sorted(known)) or 'none'})"
                    )
        return restriction

    @wire_errors
    async def subscribe(
        self,
        stream: str,
        sink: Any,
        maxRate: float,
        window: int,
        sharedMemory: bool,
        bulk: bool = False,
        **_: Any,
    ) -> Any:
        self._policy.check_alive()
        prefix = self._handle.name + "/"
        name = stream if "/" in stream else prefix + stream
        if not name.startswith(prefix):
            raise PermissionDenied(f"{name} is not a stream of {self._handle.name}")
        return start_subscription(
            self._session,
            name,
            sink,
            maxRate,
            window,
            self._policy,
            shared_memory=sharedMemory,
            bulk=bulk,
        )

    @wire_errors
    async def openRun(self, name: str, metadata: Any, **_: Any) -> Any:
        self._policy.check_alive()
        return await open_run(self._session, name, metadata, self._who())

    def _who(self) -> str:
        """Whose capability this is: the share it came from (by its token's first
        characters: the token itself is a secret), else the lab token's holder."""
        chain = self._policy.chain()
        for share in self._session.services.shares.list():
            if share.policy in chain:
                return f"share {share.instrument} {share.token[:SHARE_PREFIX]}"
        return LAB_HOLDER


SHARE_PREFIX = 12
"""Characters of a sharing token that name it in a run's record: ``share-`` and six of its
32 random ones (``labd share --list`` shows the whole token to the lab's owner)."""


def recorded(session: Session) -> RecordedData:
    data = session.services.data
    if data is None:
        raise LabdError("this labd server records no data and no runs")
    return data


async def open_run(session: Session, name: str, metadata: Any, who: str) -> RunHandleServer:
    if not name.strip():
        raise InvalidRequest("a run needs a name, e.g. 'focus scan'")
    book = recorded(session).runs
    values = {m.name: m.value for m in metadata}
    record = await to_trio(session.nursery, book.open, name, who, values)
    handle = RunHandleServer(session, book, record)
    session.nursery.start_soon(handle.close_when_gone)
    return handle


class RunHandleServer(_s.RunHandle.Server):  # type: ignore[misc]
    """A run a client opened. It ends with ``close``, or as ``disconnected`` when the
    client's connection ends first (its session nursery is cancelled)."""

    def __init__(self, session: Session, book: RunBook, record: RunRecord) -> None:
        self._session = session
        self._book = book
        self._record = record
        self._closed = trio.Event()

    @wire_errors
    async def id(self, **_: Any) -> str:
        return self._record.id

    @wire_errors
    async def close(self, outcome: str, error: str, **_: Any) -> None:
        if outcome not in (SUCCEEDED, FAILED):
            raise InvalidRequest(f"a run closes as {SUCCEEDED} or {FAILED}, not {outcome!r}")
        if self._record.outcome != RUNNING:
            raise InvalidRequest(f"run {self._record.id} has ended already")
        await to_trio(self._session.nursery, self._book.close, self._record, outcome, error)
        self._closed.set()

    async def close_when_gone(self) -> None:
        try:
            await self._closed.wait()
        finally:
            with trio.CancelScope(shield=True):
                await self._book.close(self._record, DISCONNECTED)


class RevokerServer(_s.Revoker.Server):  # type: ignore[misc]
    def __init__(self, shares: ShareRegistry, token: str) -> None:
        self._shares = shares
        self._token = token

    @wire_errors
    async def revoke(self, **_: Any) -> None:
        self._shares.revoke(self._token)


def start_subscription(
    session: Session,
    name: str,
    sink: Any,
    max_rate: float,
    window: int,
    policy: Policy,
    *,
    shared_memory: bool = False,
    bulk: bool = False,
) -> SubscriptionServer:
    stream = session.services.streams.stream(name)
    subscription = SubscriptionServer()
    session.nursery.start_soon(
        lambda: push_stream(
            stream,
            sink,
            subscription,
            max_rate=max_rate,
            window=window,
            policy=policy,
            cache=session.services.ipc_cache,
            shared_memory=shared_memory and session.local,
            bulk=session.bulk if bulk else None,
        )
    )
    return subscription


def fill_info(info: Any, handle: InstrumentHandle, streams: StreamHub) -> None:
    info.name = handle.name
    info.driver = handle.driver
    info.capabilities = list(handle.capabilities)
    info.state = handle.state.value
    last = handle.last_fault
    info.reason = handle.reason or (last.reason if last else "")
    info.restarts = handle.restarts
    info.streams = [n for n in streams.names() if n.startswith(handle.name + "/")]
    if last is not None:
        info.lastFault, info.lastFaultAt = last.reason, last.timestamp
