"""What the network thread hands to the render loop: a lock-protected mailbox.

The render loop must never wait on the network, and pycapnp objects must never leave
the network thread (docs/architecture.md, measured facts). So the network side (:mod:`gui.network`) only ever
*puts* plain values here — instrument infos, the newest frame per stream, reading
arrays, results of commands as closures — and the render loop *takes* them once per
frame with :meth:`LabModel.take`, holding the lock for a few dictionary swaps.
Frames are latest-wins: a render loop slower than the camera skips frames instead of
queueing them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from capabilities import Frame


@dataclass(frozen=True)
class InstrumentInfo:
    """One instrument as the daemon describes it."""

    name: str
    driver: str
    capabilities: tuple[str, ...]
    state: str
    """``starting``, ``ready``, ``busy``, ``faulted``, ``restarting`` or ``stopped``."""
    reason: str = ""
    restarts: int = 0
    streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connection:
    """Where the link stands; shown in the status bar."""

    status: str
    """``connecting``, ``connected`` or ``disconnected``."""
    address: str
    detail: str = ""
    local: bool = False
    """True when the daemon runs on this machine (its rings are readable here)."""


@dataclass
class Update:
    """Everything that arrived since the previous :meth:`LabModel.take`."""

    connection: Connection | None = None
    instruments: dict[str, InstrumentInfo] | None = None
    """The full list, when it changed (the panels are rebuilt)."""
    states: dict[str, InstrumentInfo] = field(default_factory=dict)
    """Instruments whose state changed."""
    frames: dict[str, Frame] = field(default_factory=dict)
    readings: dict[str, list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]] = field(
        default_factory=dict
    )
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.connection
            or self.instruments is not None
            or self.states
            or self.frames
            or self.readings
            or self.callbacks
        )


class LabModel:
    """Thread-safe mailbox between the network thread (producer) and the UI (consumer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = Update()
        self.frames_received = 0
        self.frames_skipped = 0

    def set_connection(self, connection: Connection) -> None:
        with self._lock:
            self._pending.connection = connection

    def set_instruments(self, infos: list[InstrumentInfo]) -> None:
        with self._lock:
            self._pending.instruments = {i.name: i for i in infos}
            self._pending.states.clear()

    def set_state(self, info: InstrumentInfo) -> None:
        with self._lock:
            self._pending.states[info.name] = info

    def put_frame(self, stream: str, frame: Frame) -> None:
        with self._lock:
            self.frames_received += 1
            if stream in self._pending.frames:
                self.frames_skipped += 1
            self._pending.frames[stream] = frame

    def put_readings(
        self, stream: str, t: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
    ) -> None:
        with self._lock:
            self._pending.readings.setdefault(stream, []).append((t, v))

    def call_in_ui(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the UI thread at its next frame (how command results come back)."""
        with self._lock:
            self._pending.callbacks.append(fn)

    def take(self) -> Update:
        with self._lock:
            update, self._pending = self._pending, Update()
        return update
