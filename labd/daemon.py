"""The daemon: supervisor, acquisition loops and streams under one nursery.

Services that other parts of labd add (the RPC server, rings, the persister, the script
engine) start here too, each as a child task, so that cancelling :meth:`Daemon.run`
(SIGINT, SIGTERM) unwinds all of them and closes every driver.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import trio

from labd import acquisition
from labd.config import LabConfig
from labd.scripting import RESULT_SCHEMA, Run, ScriptEngine, ScriptStore, supervisor_resolver
from labd.streams import StreamHub
from labd.supervisor import Supervisor

log = logging.getLogger("labd")


class Daemon:
    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.supervisor = Supervisor(config.instruments, config.restart)
        self.streams = StreamHub()
        self._loops = acquisition.plan(self.supervisor, config.instruments, self.streams)
        self._results = self.streams.create("scripts/results", RESULT_SCHEMA, "results")
        self.scripts = ScriptEngine(
            ScriptStore(),
            supervisor_resolver(self.supervisor),
            on_results=self._publish_results,
        )

    def _publish_results(self, _run: Run, batch: pa.RecordBatch) -> None:
        self._results.publish(batch)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``started`` once every instrument made its first attempt."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.supervisor.run)
            await nursery.start(self.scripts.run)
            for loop in self._loops:
                nursery.start_soon(loop)
            for handle in self.supervisor.handles():
                why = f" ({handle.reason})" if handle.reason else ""
                log.info("%s [%s]: %s%s", handle.name, handle.driver, handle.state.value, why)
            task_status.started()
