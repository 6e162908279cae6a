"""The daemon: supervisor, acquisition loops, streams, rings and scripts under one nursery.

Services (the RPC server, the script engine, the rings' heartbeat, the loop's watch) start
here as child tasks, so that cancelling :meth:`Daemon.run` (SIGINT, SIGTERM) unwinds all of
them, closes every driver, finishes the files on disk and removes the shared-memory rings.

Everything runs on one thread, so nothing may block it: what libraries import on first use
is imported before the loop starts (:func:`import_before_serving`), and
:mod:`labd.loopwatch` logs any stall that still happens.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import trio

from labd import acquisition, aio, loopwatch, parameters
from labd.config import LabConfig
from labd.parameters import KIND as PARAMETERS_KIND
from labd.parameters import ParameterLog
from labd.rings import Persister, RingSet, RingWriter
from labd.rings.retention import Retention, segment_bytes
from labd.rings.sizing import default_ring_memory, fmt_bytes
from labd.runs import RunBook
from labd.safe_state import safe_states
from labd.scripting import RESULT_SCHEMA, Run, ScriptEngine, ScriptStore, supervisor_resolver
from labd.streams import Stream, StreamHub
from labd.supervisor import Supervisor

log = logging.getLogger("labd")

BATCH_OVERHEAD_BYTES = 4096
"""IPC framing and metadata of one batch, with headroom."""

READING_ROW_BYTES = 32
"""timestamp + value + dictionary index, with headroom."""

RESULTS_BATCH_BYTES = 64 << 10

TRACEMALLOC_ENV = "LABD_TRACEMALLOC"
"""Set to a file path to have the daemon trace its Python allocations (bench/soak.py):
every 30 s the file is rewritten with the allocation sites that grew most since the
first minute. Costs ~2× in allocation-heavy code; meant for hunting leaks, not for labs."""

FULL_FRAME_FALLBACK = (2048, 2048, 2)
"""Frame ring slots when the camera cannot say its format at start (it is faulted)."""


def import_before_serving() -> None:
    """Import now what libraries would otherwise import on the loop, on first use.

    pyarrow's pandas shim imports pandas, if it is installed, on the first conversion of
    numpy data (``pa.array``): 0.5–8 s during which every stream, call and timeout of the
    daemon stands still (docs/architecture.md). One conversion here pays it before serving.
    """
    pa.array(np.zeros(1))


class Daemon:
    def __init__(self, config: LabConfig, daemon_id: str = "default") -> None:
        import_before_serving()
        self.config = config
        self.daemon_id = daemon_id
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.supervisor = Supervisor(config.instruments, config.restart)
        self.streams = StreamHub()
        self._loops = acquisition.plan(self.supervisor, config.instruments, self.streams)
        self._results = self.streams.create("scripts/results", RESULT_SCHEMA, "results")
        self.parameters = ParameterLog(self.supervisor, self.streams)
        self.scripts = ScriptEngine(
            ScriptStore(),
            supervisor_resolver(self.supervisor),
            on_results=self._publish_results,
            parameter_log=self.parameters,
            safe_states=safe_states({i.name: i.safe_state for i in config.instruments}),
        )
        self.rings: RingSet | None = None
        self.persister: Persister | None = None
        self.retention: Retention | None = None
        self.runs = RunBook(  # docs/runs.md
            supervisor=self.supervisor,
            streams=self.streams,
            config=config,
            daemon_id=daemon_id,
            daemon_run=self.run_id,
        )

    def _publish_results(self, _run: Run, batch: pa.RecordBatch) -> None:
        self._results.publish(batch)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``started`` once every instrument made its first attempt."""
        async with self._data_services(), trio.open_nursery() as nursery:
            await nursery.start(loopwatch.LoopWatch().run)
            # Subscribed before the supervisor starts, followed once the rings are open:
            # each instrument's first "ready" is recorded, into its ring and files.
            states = self.supervisor.subscribe_states()
            await nursery.start(self.supervisor.run)
            await nursery.start(self.scripts.run)
            await nursery.start(self.runs.run)
            await self._open_rings()
            nursery.start_soon(
                parameters.record_when_ready, self.supervisor, states, self.parameters
            )
            nursery.start_soon(self.parameters.follow_calls)
            assert self.rings is not None
            nursery.start_soon(self.rings.keep_alive)
            if self.retention is not None:
                await nursery.start(self.retention.run)
            for loop in self._loops:
                nursery.start_soon(loop)
            if os.environ.get(TRACEMALLOC_ENV):
                nursery.start_soon(trace_allocations, os.environ[TRACEMALLOC_ENV])
            for handle in self.supervisor.handles():
                why = f" ({handle.reason})" if handle.reason else ""
                log.info("%s [%s]: %s%s", handle.name, handle.driver, handle.state.value, why)
            aio.freeze_long_lived()
            task_status.started()

    @contextlib.asynccontextmanager
    async def _data_services(self) -> AsyncIterator[None]:
        """Rings, and the persister with its retention unless persistence is off, for this run.

        Closed in reverse order: the persister finishes its files from the rings before the
        rings are removed, and the run stays marked live until its files are finished.
        Finishing takes seconds for a big frames segment (bench/README.md "Finalizing
        segments"): in a worker thread, shielded from the shutdown's cancellation, so the
        loop keeps answering meanwhile.
        """
        config = self.config
        memory = config.ring_memory_bytes
        self.rings = RingSet(
            self.daemon_id,
            retention_s=config.retention_s,
            max_bytes=default_ring_memory() if memory is None else memory,
            file_group=config.group,
        )
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.rings.close)
            if config.data_dir is not None:
                self.retention = stack.enter_context(
                    Retention(
                        config.data_dir,
                        self.run_id,
                        quota=config.disk_quota_bytes,
                        access=self.rings.access,
                    )
                )
                self.persister = Persister(
                    config.data_dir,
                    self.run_id,
                    rotate_bytes=segment_bytes(self.retention.quota),
                    file_group=config.group,
                )
                stack.push_async_callback(_in_thread_shielded, self.persister.close)
                log.info(
                    "persisting streams under %s (<stream>/%s/), at most %s (disk_quota)",
                    config.data_dir,
                    self.run_id,
                    fmt_bytes(self.retention.quota),
                )
            yield

    async def _open_rings(self) -> None:
        assert self.rings is not None
        for name in self.streams.names():
            stream = self.streams.stream(name)
            batch_bytes, rate = await self._ring_shape(stream)
            # Reserving and pre-faulting a ring's pages takes 0.2-0.7 s for 500 MiB: in a
            # worker thread, so the supervisor and the instruments' first calls go on.
            ring = await trio.to_thread.run_sync(
                functools.partial(
                    self.rings.open_stream,
                    name,
                    stream.schema,
                    stream.kind,
                    expected_batch_bytes=batch_bytes,
                    batches_per_second=rate,
                )
            )
            if self.persister is not None:
                self.persister.follow(ring)
            stream.add_sink(_RingSink(ring))

    async def _ring_shape(self, stream: Stream) -> tuple[int, float]:
        """(largest batch in bytes, batches per second) the ring of ``stream`` must hold."""
        if stream.kind in ("results", PARAMETERS_KIND):
            return RESULTS_BATCH_BYTES, 1.0
        instrument = stream.name.rsplit("/", 1)[0]
        spec = next(s for s in self.config.instruments if s.name == instrument.split("/")[0])
        if stream.kind == "readings":
            # A flush holds poll_hz × interval rows; twice that covers a late flush.
            rows = min(
                acquisition.MAX_ROWS, math.ceil(2 * spec.poll_hz * acquisition.FLUSH_INTERVAL_S) + 1
            )
            return (
                BATCH_OVERHEAD_BYTES + READING_ROW_BYTES * rows,
                1.0 / acquisition.FLUSH_INTERVAL_S,
            )
        height, width, itemsize = FULL_FRAME_FALLBACK
        with contextlib.suppress(Exception):  # faulted or slow: the fallback is big enough
            handle = self.supervisor.get(instrument)
            if "RoiSelectable" in handle.capabilities:
                width, height = await handle.call("sensor_size")
        return height * width * itemsize + BATCH_OVERHEAD_BYTES, max(spec.frame_fps, 1.0)


class _RingSink:
    """Feeds a ring from a stream; a batch the ring cannot take is reported, never raised
    into the producer (an acquisition loop must not die because its ring is too small)."""

    def __init__(self, ring: RingWriter) -> None:
        self.ring = ring
        self._warned = False

    def __call__(self, seq: int, batch: pa.RecordBatch) -> None:
        try:
            self.ring.append(seq, batch)
        except ValueError as e:  # BatchTooLarge, a wrong schema or sequence
            if not self._warned:
                log.error("stream %s: batch %d not kept in its ring: %s", self.ring.stream, seq, e)
                self._warned = True


async def trace_allocations(path: str, every_s: float = 30.0) -> None:
    """Write the 25 allocation sites that grew most since the first minute to ``path``."""
    import tracemalloc

    tracemalloc.start(8)
    await trio.sleep(60)
    baseline = tracemalloc.take_snapshot()
    while True:
        await trio.sleep(every_s)
        top = tracemalloc.take_snapshot().compare_to(baseline, "traceback")[:25]
        lines = []
        for stat in top:
            lines.append(f"{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
            lines += [f"    {frame}" for frame in stat.traceback.format()]
        Path(path).write_text("\n".join(lines) + "\n")


async def _in_thread_shielded(fn: Callable[[], object]) -> None:
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(fn)
