"""Runs: every script run and every run a client opens, recorded with its provenance.

The daemon owns one :class:`RunBook`. Opening a run notes where every stream's numbering
stands, snapshots the lab (every instrument's state and parameters, the config, the
versions) and writes the record at once with outcome ``running``; closing it notes
where the streams stand now and writes it again with the outcome. Each record is one file,
``<data_dir>/runs/<run id>.json``, one JSON line written atomically (a temporary file
renamed over it), so a daemon killed at any moment leaves either the old or the new
record, and the next start marks a run left ``running`` as ``interrupted``. Without a
data directory the records live in memory only and end with the daemon
(docs/runs.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import math
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from capabilities import InvalidRequest, ParameterValue
from labd import parameters
from labd.config import LabConfig
from labd.contract.runs import (
    INTERRUPTED,
    RUNNING,
    RunRecord,
    ScriptOrigin,
    SeqRange,
    new_run_id,
    utc_text,
)
from labd.rings.access import FileAccess
from labd.rings.finalize import labd_version
from labd.streams import StreamHub
from labd.supervisor import InstrumentHandle, State, Supervisor

if TYPE_CHECKING:
    from labd.scripting import Run

log = logging.getLogger("labd.runs")

DIRECTORY = "_runs"
"""Under the data directory; a leading ``_``: no instrument has that name (they start with a
letter), and pyarrow datasets, pandas and Dask skip it when they list the directory."""

LOG_TAIL = 50
"""Lines of a script run's log kept in its record."""

SNAPSHOT_TIMEOUT_S = 5.0
"""How long opening a run waits for one instrument's parameters; a slower (or hung)
instrument is recorded with ``parameters_error`` instead of holding up the run."""

DEFAULT_CONFIG_SOURCE = "<default simulated lab>"

KEPT_IN_MEMORY = 1000
"""Finished runs the daemon keeps in memory (the newest; every open one besides). A daemon
that runs scripts around the clock for weeks would otherwise grow by every record (tens of
KiB each: its parameters, its log's tail; the soak, bench/README.md "Soak"). Older ones
are read from their files when asked for by id; ``labd runs`` lists the kept ones."""

_RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{8,64}")
_STILL_RUNNING = f',"outcome":"{RUNNING}",'


class RunBook:
    """The runs of one daemon: in memory, and in ``<data_dir>/runs/`` when it persists."""

    def __init__(
        self,
        *,
        supervisor: Supervisor,
        streams: StreamHub,
        config: LabConfig,
        daemon_id: str,
        daemon_run: str,
    ) -> None:
        self._supervisor = supervisor
        self._streams = streams
        self.directory = config.data_dir / DIRECTORY if config.data_dir is not None else None
        self._access = FileAccess.for_group(config.group)  # as the persisted files
        self._config = config_provenance(config)
        self._versions = versions({spec.driver for spec in config.instruments})
        self._daemon = {
            "id": daemon_id,
            "run": daemon_run,
            "host": socket.gethostname(),
            "data_dir": str(config.data_dir) if config.data_dir is not None else "",
        }
        self._records: dict[str, RunRecord] = {}
        self._write_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        if self.directory is not None:
            self._load()

    # -- reading ---------------------------------------------------------------------

    def list(self) -> list[RunRecord]:
        """Every run, oldest first (ids sort by start time)."""
        return [self._records[k] for k in sorted(self._records)]

    def get(self, run_id: str) -> RunRecord:
        record = self._records.get(run_id)
        if record is None and self.directory is not None and _RUN_ID.fullmatch(run_id):
            with contextlib.suppress(OSError, ValueError, TypeError):
                record = RunRecord.from_json((self.directory / f"{run_id}.json").read_text())
        if record is None:
            where = f" in {self.directory}" if self.directory is not None else ""
            raise InvalidRequest(f"no run {run_id!r}{where}; `labd runs` lists the runs there are")
        return record

    def _forget_old(self) -> None:
        """Keep the open runs and the newest :data:`KEPT_IN_MEMORY` finished ones."""
        finished = [k for k in sorted(self._records) if self._records[k].outcome != RUNNING]
        for run_id in finished[: max(0, len(finished) - KEPT_IN_MEMORY)]:
            del self._records[run_id]

    # -- recording -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the tasks that follow script runs to their end; run until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def open(
        self, name: str, who: str, metadata: Mapping[str, str] | None = None
    ) -> RunRecord:
        """A new run, recorded (outcome ``running``) before this returns."""
        record = self._begin(name, who, metadata or {})
        await self._snapshot(record)
        await self._write(record)
        log.info("run %s (%r) opened by %s", record.id, name, who)
        return record

    async def close(
        self,
        record: RunRecord,
        outcome: str,
        error: str | None = None,
        log_tail: Sequence[str] = (),
    ) -> None:
        """End ``record`` with ``outcome`` (no-op if it has ended already)."""
        if record.outcome != RUNNING:
            return
        record.ended = utc_text(time.time())
        record.outcome = outcome
        record.error = error or None
        record.log_tail = list(log_tail)
        for stream_name, seqs in record.streams.items():
            last = self._streams.stream(stream_name).seq
            assert seqs.first is not None
            if last < seqs.first:
                seqs.first = None  # nothing published while the run went on
            else:
                seqs.last = last
        await self._write(record)
        self._forget_old()
        log.info("run %s (%r) ended: %s%s", record.id, record.name, outcome, _why(error))

    def record_script(self, run: Run, who: str) -> RunRecord:
        """Record script run ``run``, which has just been started: its streams' positions
        now, the rest of the record (snapshot, file) and its end by a task of its own, so
        the caller does not wait for the instruments."""
        record = self._begin(run.script.label, who, {})
        record.script = ScriptOrigin(
            name=run.script.name,
            version=run.script.version,
            sha256=run.script.sha256,
            args=dict(run.args),
            grants=run.grants.describe(),
            engine_run=run.id,
        )
        if self._nursery is None:
            raise RuntimeError("RunBook.run is not running")
        self._nursery.start_soon(self._follow_script, run, record)
        return record

    async def _follow_script(self, run: Run, record: RunRecord) -> None:
        try:
            await self._snapshot(record)
            await self._write(record)
            # A failure is the run's outcome, recorded below; not this task's error.
            with contextlib.suppress(Exception):
                await run.wait()
        finally:
            with trio.CancelScope(shield=True):  # the daemon stops: still write the end
                outcome = run.state.value if run.state.finished else INTERRUPTED
                error = f"{run.error.code}: {run.error.message}" if run.error else None
                tail = [str(line) for line in run.log[-LOG_TAIL:]]
                await self.close(record, outcome, error, tail)

    def _begin(self, name: str, who: str, metadata: Mapping[str, str]) -> RunRecord:
        """The record's first part, taken at once (no await): where each stream stands."""
        started = time.time()
        record = RunRecord(
            id=new_run_id(started),
            name=name,
            who=who,
            started=utc_text(started),
            metadata={str(k): str(v) for k, v in metadata.items()},
            config=dict(self._config),
            versions=dict(self._versions),
            daemon=dict(self._daemon),
            streams={
                n: SeqRange(self._streams.stream(n).seq + 1, None) for n in self._streams.names()
            },
        )
        self._records[record.id] = record
        return record

    async def _snapshot(self, record: RunRecord) -> None:
        """Every instrument's state, and its parameters where it has some, concurrently."""
        handles = self._supervisor.handles()
        async with trio.open_nursery() as nursery:
            for handle in handles:
                entry: dict[str, Any] = {
                    "driver": handle.driver,
                    "state": handle.state.value,
                    "reason": handle.reason or "",
                    "parameters": {},
                }
                record.instruments[handle.name] = entry
                if "Configurable" in handle.capabilities:
                    nursery.start_soon(_read_parameters, handle, entry)

    async def _write(self, record: RunRecord) -> None:
        if self.directory is None:
            return
        text = record.to_json() + "\n"
        async with self._write_lock:
            try:
                await trio.to_thread.run_sync(
                    _write_atomically, self._access, self.directory, record.id, text
                )
            except OSError as e:  # a full disk must not fail the experiment
                log.error("run %s: record not written to %s: %s", record.id, self.directory, e)

    def _load(self) -> None:
        """Read the records of earlier daemons; those left ``running`` were interrupted."""
        assert self.directory is not None
        if not self.directory.is_dir():
            return
        for leftover in self.directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        paths = sorted(self.directory.glob("*.json"))
        for index, path in enumerate(paths):
            try:
                if index < len(paths) - KEPT_IN_MEMORY and not _still_running(path):
                    continue  # old and ended: read from its file if asked for
                record = RunRecord.from_json(path.read_text())
            except (OSError, ValueError, TypeError) as e:
                log.warning("%s: not a run record (%s); left as it is", path, e)
                continue
            if record.outcome == RUNNING:
                record.outcome = INTERRUPTED
                record.error = (
                    f"the daemon ({record.daemon.get('run', '?')}) stopped while the run was"
                    f" going; found at the start of the next one, {utc_text(time.time())}"
                )
                try:
                    text = record.to_json() + "\n"
                    _write_atomically(self._access, self.directory, record.id, text)
                except OSError as e:
                    log.error("%s: cannot mark it interrupted: %s", path, e)
                log.warning("run %s (%r) was interrupted", record.id, record.name)
            self._records[record.id] = record
        self._forget_old()


def _still_running(path: Path) -> bool:
    """Whether the record at ``path`` says ``running``: its outcome is among its first
    fields (:class:`RunRecord`), so the head of the file tells without parsing it all."""
    with path.open("rb") as f:
        return _STILL_RUNNING.encode() in f.read(16384)


async def _read_parameters(handle: InstrumentHandle, entry: dict[str, Any]) -> None:
    if handle.state not in (State.READY, State.BUSY):
        entry["parameters_error"] = f"not read: the instrument is {handle.state.value}"
        return
    values: dict[str, dict[str, Any]] = entry["parameters"]
    with trio.move_on_after(SNAPSHOT_TIMEOUT_S) as scope:
        try:
            for parameter in await parameters.describe(handle):
                if parameter.readable:
                    value = await handle.call("get_parameter", parameter.name)
                    values[parameter.name] = {"value": _json_value(value), "unit": parameter.unit}
        except Exception as e:  # the instrument's fault: recorded, not raised into the run
            entry["parameters_error"] = f"{type(e).__name__}: {e}"
    if scope.cancelled_caught:
        entry["parameters_error"] = f"not all read within {SNAPSHOT_TIMEOUT_S:g} s"


def _json_value(value: ParameterValue) -> ParameterValue:
    """JSON has no NaN or infinity: those are kept as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _write_atomically(access: FileAccess, directory: Path, run_id: str, text: str) -> None:
    access.make_dirs(directory)
    # A leading dot: pandas, pyarrow and globs of *.json never see a half-written file.
    tmp = directory / f".{run_id}.json.tmp"
    fd = access.create_file(tmp, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(directory / f"{run_id}.json")


def config_provenance(config: LabConfig) -> dict[str, str]:
    """``source``, ``sha256`` and ``text`` of the lab config, read when the daemon starts
    (the file named by ``config.source``, or the built-in simulated lab)."""
    text = ""
    if config.source == DEFAULT_CONFIG_SOURCE:
        text = resources.files("labd").joinpath("default_lab.toml").read_text()
    else:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = Path(config.source).read_text()
    return {
        "source": config.source,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "text": text,
    }


def versions(drivers: set[str]) -> dict[str, str]:
    """labd's, Python's and each driver's version (``driver <name>``: its package)."""
    found = {"labd": labd_version(), "python": platform.python_version()}
    for name in sorted(drivers):
        found[f"driver {name}"] = _driver_version(name)
    return found


def _driver_version(name: str) -> str:
    """Built-in drivers ship with labd; an installed one is its package's; a
    ``module:Class`` its package's if it has one, else its module's ``__version__``."""
    from drivers.registry import DRIVERS, installed_drivers

    if name in DRIVERS:
        return f"labd {labd_version()}"
    for entry in installed_drivers():
        if entry.name == name and not entry.shadowed and entry.package:
            return entry.package
    module = name.split(":")[0]
    packages = importlib.metadata.packages_distributions().get(module.split(".")[0], [])
    if packages:
        return f"{packages[0]} {importlib.metadata.version(packages[0])}"
    own = getattr(sys.modules.get(module), "__version__", None)
    return f"{module} {own}" if own else f"{module} (no package version)"


def _why(error: str | None) -> str:
    return f" ({error})" if error else ""
