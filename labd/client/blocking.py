"""The blocking client: plain function calls for scripts and Jupyter, no event loop in sight.

A background thread runs :func:`labd.aio.run` and owns *every* pycapnp object: releasing a
capability on another thread aborts the process (docs/architecture.md, measured facts). So the objects handed to
the caller hold only an integer id into the thread's table; calls are shipped over with
``trio.from_thread.run`` and return plain values (readings, frames, Arrow batches), and a
wrapper that is garbage-collected asks the thread to drop its entry there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from capabilities import Parameter, ParameterValue
from labd.client.lab import (
    InstrumentInfo,
    Message,
    ShareInfo,
    StreamInfo,
    connect,
    redeem,
)
from labd.client.portal import BlockingSubscription, _Handle, _Portal
from labd.client.scripts import BlockingScripts
from labd.contract.restriction import Restriction
from labd.contract.runs import RunRecord, RunSummary

if TYPE_CHECKING:
    from labd.client.replay import DataInfo

T = TypeVar("T")


class BlockingCapability(_Handle):
    """A capability whose Protocol methods are plain blocking calls:
    ``stage.move_abs(3.0)`` instead of ``await stage.move_abs(3.0)``."""

    def __init__(self, portal: _Portal, key: int, capability: type) -> None:
        super().__init__(portal, key)
        self._capability = capability
        self._methods = {
            name for name, v in vars(capability).items() if not name.startswith("_") and callable(v)
        }

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(
                f"{self._capability.__name__} has no method {name!r};"
                f" it has: {', '.join(sorted(self._methods))}"
            )
        return lambda *args: self._call(name, *args)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | self._methods)


class BlockingMessages(BlockingSubscription):
    def __next__(self) -> Message:
        message: Message = super().__next__()
        return message


class BlockingRevoker(_Handle):
    def revoke(self) -> None:
        self._call("revoke")


class BlockingParameters(_Handle):
    """``inst.parameters`` with blocking calls: ``inst.parameters["gain"].set(4)``."""

    def list(self) -> list[Parameter]:
        described: list[Parameter] = self._call("list")
        return described

    def describe(self, name: str) -> Parameter:
        parameter: Parameter = self._call("describe", name)
        return parameter

    def get(self, name: str) -> ParameterValue:
        value: ParameterValue = self._call("get", name)
        return value

    def set(self, name: str, value: ParameterValue, unit: str = "") -> ParameterValue:
        """See :meth:`labd.client.parameters.Parameters.set`."""
        held: ParameterValue = self._call("set", name, value, unit)
        return held

    def __getitem__(self, name: str) -> BlockingParameter:
        return BlockingParameter(self, name)

    def watch(self) -> BlockingSubscription:
        """Every parameter set on the instrument from now on, as ParameterChange."""

        async def enter(parameters: Any) -> Any:
            return await (await parameters.watch()).__aenter__()

        return BlockingSubscription(self._portal, self._derive_async(enter))


class BlockingParameter:
    """One parameter, with blocking calls."""

    def __init__(self, parameters: BlockingParameters, name: str) -> None:
        self._parameters = parameters
        self.name = name

    def describe(self) -> Parameter:
        return self._parameters.describe(self.name)

    def get(self) -> ParameterValue:
        return self._parameters.get(self.name)

    def set(self, value: ParameterValue, unit: str = "") -> ParameterValue:
        return self._parameters.set(self.name, value, unit)


class BlockingRun(_Handle):
    """``with lab.run("focus scan", sample="A12") as run:`` (see :meth:`labd.client.Lab.run`)."""

    id = ""
    """The run's id, known inside the ``with`` block."""

    def __enter__(self) -> BlockingRun:
        portal, key = self._portal, self._key

        async def enter() -> str:
            run = await portal.get(key).__aenter__()
            return str(run.id)

        self.id = portal.run(enter)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The traceback stays in this thread: the run needs only the exception's text.
        self._call("__aexit__", exc_type, exc, None)


class BlockingInstrument(_Handle):
    @property
    def parameters(self) -> BlockingParameters:
        """Its settings by name (docs/parameters.md)."""
        return BlockingParameters(self._portal, self._derive(lambda inst: inst.parameters))

    def info(self) -> InstrumentInfo:
        info: InstrumentInfo = self._call("info")
        return info

    def capabilities(self) -> list[str]:
        names: list[str] = self._call("capabilities")
        return names

    def get(self, capability: type[T]) -> BlockingCapability:
        """The instrument's ``capability``, with blocking methods."""
        key = self._derive_async(lambda inst: inst.get(capability))
        return BlockingCapability(self._portal, key, capability)

    def restrict(self, restriction: Restriction) -> BlockingInstrument:
        return BlockingInstrument(
            self._portal, self._derive_async(lambda i: i.restrict(restriction))
        )

    def share(self, restriction: Restriction | None = None) -> tuple[str, BlockingRevoker]:
        portal, key = self._portal, self._key

        async def share() -> tuple[str, int]:
            token, revoker = await portal.get(key).share(restriction)
            return token, portal.keep(revoker)

        token, revoker_key = portal.run(share)
        return token, BlockingRevoker(portal, revoker_key)

    def run(self, name: str, /, **metadata: object) -> BlockingRun:
        """A run recorded as this holder's (a share's holder: the share)."""
        return BlockingRun(self._portal, self._derive(lambda inst: inst.run(name, **metadata)))

    def subscribe(
        self,
        stream: str,
        *,
        max_rate: float = 0.0,
        window: int = 2,
        shared_memory: bool | None = None,
    ) -> BlockingMessages:
        """See :meth:`labd.client.Lab.subscribe`."""
        return _open_feed(
            self,
            lambda i: i.subscribe(
                stream, max_rate=max_rate, window=window, shared_memory=shared_memory
            ),
        )


class BlockingLab(_Handle):
    """The lab, with blocking calls. Close it (or use ``with``) to end the connection."""

    def __init__(self, portal: _Portal) -> None:
        super().__init__(portal, portal.root)

    def instruments(self) -> list[InstrumentInfo]:
        infos: list[InstrumentInfo] = self._call("instruments")
        return infos

    def instrument(self, name: str) -> BlockingInstrument:
        return BlockingInstrument(self._portal, self._derive(lambda lab: lab.instrument(name)))

    def streams(self) -> list[StreamInfo]:
        streams: list[StreamInfo] = self._call("streams")
        return streams

    def subscribe(
        self,
        stream: str,
        *,
        max_rate: float = 0.0,
        window: int = 2,
        shared_memory: bool | None = None,
    ) -> BlockingMessages:
        """See :meth:`labd.client.Lab.subscribe`."""
        return _open_feed(
            self,
            lambda lab: lab.subscribe(
                stream, max_rate=max_rate, window=window, shared_memory=shared_memory
            ),
        )

    def watch_states(self) -> BlockingSubscription:
        """Iterate to receive :class:`StateChange` items."""
        return _open_feed(self, lambda lab: lab.watch_states())

    def shares(self) -> list[ShareInfo]:
        shares: list[ShareInfo] = self._call("shares")
        return shares

    def revoke(self, token: str) -> None:
        self._call("revoke", token)

    def scripts(self) -> BlockingScripts:
        """The daemon's script engine, with blocking calls (see labd.client.scripts)."""
        return BlockingScripts(self._portal, self._derive_async(lambda lab: lab.scripts()))

    def replay(self, stream: str, start: float, end: float) -> pa.Table:
        """See :meth:`labd.client.Lab.replay`."""
        table: pa.Table = self._call("replay", stream, start, end)
        return table

    def data_info(self) -> DataInfo:
        """See :meth:`labd.client.Lab.data_info`."""
        info: DataInfo = self._call("data_info")
        return info

    def run(self, name: str, /, **metadata: object) -> BlockingRun:
        """See :meth:`labd.client.Lab.run`: ``with lab.run("focus scan", sample="A12") as run:``."""
        return BlockingRun(self._portal, self._derive(lambda lab: lab.run(name, **metadata)))

    def runs(self) -> list[RunSummary]:
        """See :meth:`labd.client.Lab.runs`."""
        runs: list[RunSummary] = self._call("runs")
        return runs

    def get_run(self, run_id: str) -> RunRecord:
        """See :meth:`labd.client.Lab.get_run`."""
        record: RunRecord = self._call("get_run", run_id)
        return record

    def replay_run(self, run_id: str, stream: str) -> pa.Table:
        """See :meth:`labd.client.Lab.replay_run`."""
        table: pa.Table = self._call("replay_run", run_id, stream)
        return table

    def close(self) -> None:
        self._portal.close()

    def __enter__(self) -> BlockingLab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_feed(owner: _Handle, make: Callable[[Any], Any]) -> BlockingMessages:
    async def enter(obj: Any) -> Any:
        feed = make(obj)
        return await feed.__aenter__()

    return BlockingMessages(owner._portal, owner._derive_async(enter))


def connect_blocking(
    address: str | None = None,
    *,
    token: str | None = None,
    token_file: str | None = None,
    tls_ca: str | None = None,
    server_hostname: str | None = None,
) -> BlockingLab:
    """Blocking :func:`labd.client.connect`: same arguments, returns a :class:`BlockingLab`."""

    def opener() -> contextlib.AbstractAsyncContextManager[Any]:
        return connect(
            address,
            token=token,
            token_file=token_file,
            tls_ca=tls_ca,
            server_hostname=server_hostname,
        )

    return BlockingLab(_Portal(opener))


class BlockingShared(BlockingInstrument):
    """A redeemed instrument: it owns its connection, so close it when done."""

    def close(self) -> None:
        self._portal.close()

    def __enter__(self) -> BlockingShared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redeem_blocking(
    share_token: str,
    address: str | None = None,
    *,
    tls_ca: str | None = None,
    server_hostname: str | None = None,
) -> BlockingShared:
    """Blocking :func:`labd.client.redeem`."""

    def opener() -> contextlib.AbstractAsyncContextManager[Any]:
        return redeem(share_token, address, tls_ca=tls_ca, server_hostname=server_hostname)

    portal = _Portal(opener)
    return BlockingShared(portal, portal.root)
