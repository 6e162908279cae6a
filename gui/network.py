"""The network thread: one Trio + pycapnp loop that talks to the daemon for the GUI.

Everything that touches pycapnp lives on this thread (capabilities released on another
thread abort the process, docs/architecture.md, measured facts). The render loop never waits on it: it reads
what arrived from :class:`gui.model.LabModel` and posts commands with :meth:`NetworkThread.submit`
(or :meth:`NetworkThread.call`), whose results come back as closures run on the UI thread.

The connection is kept alive: when the daemon goes away the model says so, and the
link reconnects with back-off, re-subscribing every stream once the daemon is back.
Closing or killing the GUI only drops this client's connection; the daemon's
per-connection nursery (``labd.rpc.server``) takes exactly this client's work down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import trio

from capabilities.introspect import capability
from gui.model import Connection, InstrumentInfo, LabModel
from labd.aio import run as run_with_capnp
from labd.client import ConnectionLost, Instrument, Lab, NoDaemon, connect
from labd.client import InstrumentInfo as WireInfo
from labd.contract.address import parse_address

log = logging.getLogger("labd.gui")

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]

#: Recoverable ways a connection ends; anything else is a bug and is logged as such.
CONNECTION_ERRORS = (NoDaemon, ConnectionLost, ConnectionError, OSError, FileNotFoundError)


class NetworkThread:
    """The GUI's connection to one daemon, run on its own thread."""

    def __init__(
        self,
        model: LabModel,
        address: str | None = None,
        *,
        token: str | None = None,
        tls_ca: str | None = None,
        frame_rate: float = 30.0,
        retry_max_s: float = 5.0,
    ) -> None:
        self.model = model
        self.address = address
        self.token = token
        self.tls_ca = tls_ca
        self.frame_rate = frame_rate
        self.retry_max_s = retry_max_s
        self._thread: threading.Thread | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._root: trio.CancelScope | None = None
        self._session: trio.Nursery | None = None
        self._lab: Lab | None = None
        self._remotes: dict[tuple[str, str], Any] = {}
        self._ready = threading.Event()

    # ------------------------------------------------------------ UI-thread side

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="labd-link", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 3.0) -> None:
        """Cancel everything on the network thread and wait (bounded) for it to end."""
        token, root = self._trio_token, self._root
        if token is not None and root is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(root.cancel)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(
        self,
        op: Callable[[Lab], Awaitable[Any]],
        done: Done | None = None,
        failed: Failed | None = None,
    ) -> None:
        """Run ``await op(lab)`` on the network thread; ``done(result)`` / ``failed(exc)``
        then run on the UI thread. Fails at once (with ConnectionLost) while disconnected."""

        def spawn() -> None:
            session, lab = self._session, self._lab
            if session is None or lab is None:
                self._report(failed, ConnectionLost("not connected to a daemon"))
                return
            try:
                session.start_soon(self._run_op, op, lab, done, failed)
            except RuntimeError:  # the session ended (daemon lost) after the check above
                self._report(failed, ConnectionLost("not connected to a daemon"))

        token = self._trio_token
        if token is None:
            self._report(failed, ConnectionLost("the network thread is not running"))
            return
        try:
            token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            self._report(failed, ConnectionLost("the network thread has stopped"))

    def call(
        self,
        instrument: str,
        capability_name: str,
        method: str,
        *args: Any,
        done: Done | None = None,
        failed: Failed | None = None,
    ) -> None:
        """Call ``method`` of ``instrument``'s ``capability_name`` (e.g. Movable.move_abs)."""

        async def op(lab: Lab) -> Any:
            key = (instrument, capability_name)
            remote = self._remotes.get(key)
            if remote is None:
                remote = await lab.instrument(instrument).get(capability(capability_name))
                self._remotes[key] = remote
            return await getattr(remote, method)(*args)

        self.submit(op, done, failed)

    def instrument(self, lab: Lab, name: str) -> Instrument:
        """``lab.instrument(name)``, kept for this connection (network thread only), so
        that its capabilities and parameter list are asked once, not at every set."""
        key = (name, "Instrument")
        inst = self._remotes.get(key)
        if inst is None:
            inst = self._remotes[key] = lab.instrument(name)
        assert isinstance(inst, Instrument)
        return inst

    @property
    def local(self) -> bool:
        """Whether the daemon is on this machine (so its shared-memory rings are readable)."""
        if self.address is None:
            return True
        addr = parse_address(self.address)
        return addr.kind == "unix" or addr.host in ("127.0.0.1", "::1", "localhost")

    # ------------------------------------------------------------ network-thread side

    def _thread_main(self) -> None:
        try:
            run_with_capnp(self._main, handle_signals=False)
        except BaseException:
            log.exception("the GUI's network thread died")
            self.model.set_connection(
                Connection("disconnected", self.address or "local", "network thread died; see log")
            )

    async def _main(self) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as root:
            self._root = root
            self._ready.set()
            await self._connection_loop()

    async def _connection_loop(self) -> None:
        shown = self.address or "local daemon"
        delay = 0.2
        while True:
            self.model.set_connection(Connection("connecting", shown, local=self.local))
            detail = ""
            try:
                async with connect(self.address, token=self.token, tls_ca=self.tls_ca) as lab:
                    delay = 0.2
                    await self._serve_session(lab)
            except* CONNECTION_ERRORS as group:
                detail = _first_line(group.exceptions[0])
            self._lab = None
            self._session = None
            self._remotes.clear()
            self.model.set_connection(
                Connection("disconnected", shown, detail or "connection closed", self.local)
            )
            await trio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    async def _serve_session(self, lab: Lab) -> None:
        infos = await lab.instruments()
        self.model.set_instruments([_info(i) for i in infos])
        kinds = {s.name: s.kind for s in await lab.streams()}
        async with trio.open_nursery() as nursery:
            self._lab = lab
            self._session = nursery
            self.model.set_connection(
                Connection("connected", lab.address, f"{len(infos)} instruments", self.local)
            )
            nursery.start_soon(self._watch_states, lab, {i.name: i for i in infos})
            for stream, kind in kinds.items():
                if kind == "frames":
                    nursery.start_soon(self._follow_frames, lab, stream)
                elif kind == "readings":
                    nursery.start_soon(self._follow_readings, lab, stream)

    async def _watch_states(self, lab: Lab, infos: dict[str, WireInfo]) -> None:
        async with lab.watch_states() as changes:
            # States may have moved between listing and watching: ask once more.
            for info in await lab.instruments():
                self.model.set_state(_info(info))
                infos[info.name] = info
            async for change in changes:
                old = infos.get(change.instrument)
                if old is None:
                    continue
                restarts = old.restarts + (change.state == "restarting")
                new = WireInfo(
                    old.name,
                    old.driver,
                    old.capabilities,
                    change.state,
                    change.reason,
                    restarts,
                    old.streams,
                )
                infos[change.instrument] = new
                self.model.set_state(_info(new))
        raise ConnectionLost("the daemon ended the state watch")

    async def _follow_frames(self, lab: Lab, stream: str) -> None:
        async with lab.subscribe(stream, max_rate=self.frame_rate, window=2) as sub:
            async for message in sub:
                self.model.put_frame(stream, message.frame())

    async def _follow_readings(self, lab: Lab, stream: str) -> None:
        async with lab.subscribe(stream) as sub:
            async for message in sub:
                batch = message.batch
                t = batch.column("timestamp").to_numpy()
                v = batch.column("value").to_numpy()
                self.model.put_readings(stream, np.asarray(t), np.asarray(v))

    async def _run_op(
        self,
        op: Callable[[Lab], Awaitable[Any]],
        lab: Lab,
        done: Done | None,
        failed: Failed | None,
    ) -> None:
        try:
            result = await op(lab)
        except Exception as exc:
            self._report(failed, exc)
            return
        if done is not None:
            self.model.call_in_ui(lambda: done(result))

    def _report(self, failed: Failed | None, exc: BaseException) -> None:
        if failed is not None:
            self.model.call_in_ui(lambda: failed(exc))
        else:
            log.warning("%s", _first_line(exc))


def _info(info: WireInfo) -> InstrumentInfo:
    return InstrumentInfo(
        info.name,
        info.driver,
        tuple(info.capabilities),
        info.state,
        info.reason,
        info.restarts,
        tuple(info.streams),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
