"""The labd client library.

Async (Trio code run by :func:`labd.aio.run`)::

    async with labd.client.connect() as lab:
        stage = await lab.instrument("stage").get(Movable)
        await stage.move_abs(3.0)

Blocking (scripts, Jupyter)::

    lab = labd.client.connect_blocking()
    stage = lab.instrument("stage").get(Movable)
    stage.move_abs(3.0)
    lab.instrument("meter").parameters["wavelength"].set(1064, "nm")
"""

from capabilities.parameters import ParameterChange
from labd.client.blocking import BlockingLab, connect_blocking, redeem_blocking
from labd.client.errors import ConnectionLost, NoDaemon
from labd.client.lab import (
    Instrument,
    InstrumentInfo,
    Lab,
    Message,
    ShareInfo,
    StateChange,
    StreamInfo,
    connect,
    redeem,
)
from labd.client.parameters import Parameters
from labd.contract.restriction import ParameterLimit, Restriction

__all__ = [
    "BlockingLab",
    "ConnectionLost",
    "Instrument",
    "InstrumentInfo",
    "Lab",
    "Message",
    "NoDaemon",
    "ParameterChange",
    "ParameterLimit",
    "Parameters",
    "Restriction",
    "ShareInfo",
    "StateChange",
    "StreamInfo",
    "connect",
    "connect_blocking",
    "redeem",
    "redeem_blocking",
]
