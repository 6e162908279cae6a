"""A run's record: what both the daemon (which writes it) and its clients (which read it) agree on.

A run is a stretch of an experiment with its provenance: who started it, when, with which
script, arguments, grants, lab config, parameters, versions, and which batches of every
stream it covers (docs/runs.md). The daemon keeps each record as one JSON object on one
line in ``<data_dir>/runs/<run id>.json``; the same text crosses the wire
(``Lab.getRun``), so this one type reads both.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
DISCONNECTED = "disconnected"
"""A client-opened run whose client went away (or dropped the run) before closing it."""
INTERRUPTED = "interrupted"
"""The daemon stopped (was killed) while the run was going; set by its next start."""

LAB_HOLDER = "lab"
"""Who a run of the lab token's holder is (a share's is ``share <instrument> <token prefix>``)."""

ID_RANDOM_BYTES = 4
"""Random bytes of an id after its start time: ids stay unique across daemons and hosts
(one collision in ~65 000 runs started within the same second)."""


def new_run_id(at: float | None = None) -> str:
    """``<UTC yyyymmddThhmmss>-<8 hex>``: sortable by start time, unique across restarts."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if at is None else at))
    return f"{stamp}-{secrets.token_hex(ID_RANDOM_BYTES)}"


def utc_text(seconds: float) -> str:
    """ISO 8601 in UTC with microseconds (``2026-12-02T03:15:00.123456+00:00``)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def utc_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class SeqRange:
    """The batches of one stream a run covers: ``first`` to ``last``, both included, as
    numbered in the daemon run ``RunRecord.daemon["run"]``. Whole batches: the first and
    last may hold rows from just before or after the run (compare their timestamps).
    ``last`` is None while the run goes on; both are None for a stream that published
    nothing during it."""

    first: int | None
    last: int | None

    @property
    def batches(self) -> int:
        if self.first is None or self.last is None:
            return 0
        return self.last - self.first + 1


@dataclass
class ScriptOrigin:
    """The WebAssembly script a script run ran (docs/scripting.md)."""

    name: str
    version: int
    sha256: str
    """Of the WebAssembly binary."""
    args: dict[str, str]
    grants: str
    """As the daemon understood them, e.g. ``"meter:*; stage:Movable"``."""
    engine_run: int
    """The run's number in the daemon's script engine (``labd run``, ``getRun``)."""


@dataclass
class RunRecord:
    """One run (docs/runs.md lists what each field holds)."""

    id: str
    name: str
    who: str
    """``lab`` (the lab token's holder) or ``share <instrument> <token prefix>``."""
    started: str
    """UTC, ISO 8601 (:func:`utc_text`)."""
    ended: str | None = None
    outcome: str = RUNNING
    error: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    script: ScriptOrigin | None = None
    log_tail: list[str] = field(default_factory=list)
    """The last lines of a script run's log."""
    config: dict[str, str] = field(default_factory=dict)
    """``source``, ``sha256`` and ``text`` of the lab config the daemon runs."""
    versions: dict[str, str] = field(default_factory=dict)
    """``labd``, ``python``, and ``driver <name>`` for every driver of the lab."""
    instruments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per instrument at the start: ``driver``, ``state``, ``reason``, ``parameters``
    (``{name: {"value": v, "unit": u}}``) and ``parameters_error`` where they could not
    be read."""
    daemon: dict[str, str] = field(default_factory=dict)
    """``id``, ``run`` (the daemon run: the numbering of the seqs and the files' directory,
    docs/live-data.md), ``host`` and ``data_dir``."""
    streams: dict[str, SeqRange] = field(default_factory=dict)

    @property
    def started_s(self) -> float:
        return utc_seconds(self.started)

    @property
    def ended_s(self) -> float | None:
        return None if self.ended is None else utc_seconds(self.ended)

    def to_json(self) -> str:
        """One line of JSON (the file holds exactly this, so JSON Lines readers take it)."""
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a run record is a JSON object")
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}  # newer daemons add fields
        script = data.get("script")
        data["script"] = ScriptOrigin(**script) if script else None
        data["streams"] = {name: SeqRange(**r) for name, r in data.get("streams", {}).items()}
        return cls(**data)


@dataclass(frozen=True)
class RunSummary:
    """A run as ``Lab.runs`` lists it (``labd runs``)."""

    id: str
    name: str
    who: str
    started: float
    """Seconds since the epoch."""
    ended: float | None
    outcome: str
    script: str
    """``name vN``; empty for a run a client opened."""

    @classmethod
    def of(cls, record: RunRecord) -> RunSummary:
        script = f"{record.script.name} v{record.script.version}" if record.script else ""
        return cls(
            record.id,
            record.name,
            record.who,
            record.started_s,
            record.ended_s,
            record.outcome,
            script,
        )
