"""The script engine: starts runs of stored scripts, a bounded number at a time.

The engine is a Trio service like the supervisor: ``await nursery.start(engine.run)``
hosts every run in its nursery, so cancelling the engine cancels all runs. Scripts run in
worker threads under the engine's own :class:`trio.CapacityLimiter`, so a lab full of
scripts never starves the threads that drivers use for blocking I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from labd.contract.script_errors import ScriptError
from labd.safe_state import SafeState
from labd.scripting.grants import Grants
from labd.scripting.host import Resolver
from labd.scripting.limits import RunLimits
from labd.scripting.run import ResultsSink, Run
from labd.scripting.store import ScriptStore

if TYPE_CHECKING:
    from labd.parameters import ParameterLog

KEEP_FINISHED = 100
"""Finished runs remembered for ``runs()``/``get_run()``."""


class ScriptEngine:
    """Runs scripts from ``store`` against the instruments ``resolver`` hands out.

    ``parameter_log``: where runs' parameter sets are recorded (the daemon's, so they land
    on ``<instrument>/parameters`` with ``by = "script <name> run <id>"``); None records
    nothing, for tools and tests without streams. ``safe_states``: instrument (or
    ``name/channel``) -> the state a run that held it for writing leaves it in when it ends
    abnormally (the lab config's ``[instruments.X.safe_state]``, docs/scripting.md).
    """

    def __init__(
        self,
        store: ScriptStore,
        resolver: Resolver,
        *,
        max_concurrent: int = 4,
        limits: RunLimits | None = None,
        on_results: ResultsSink | None = None,
        parameter_log: ParameterLog | None = None,
        safe_states: Mapping[str, SafeState] | None = None,
    ) -> None:
        self.store = store
        self.default_limits = limits or RunLimits()
        self.limiter = trio.CapacityLimiter(max_concurrent)
        self._resolver = resolver
        self._on_results = on_results
        self.parameter_log = parameter_log
        self.safe_states = dict(safe_states or {})
        self._nursery: trio.Nursery | None = None
        self._runs: OrderedDict[int, Run] = OrderedDict()
        self._next_id = 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host runs until cancelled (which cancels every run)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def start(
        self,
        name: str,
        *,
        version: int | None = None,
        args: Mapping[str, str] | None = None,
        grants: Grants | None = None,
        limits: RunLimits | None = None,
    ) -> Run:
        """Start a run of ``name`` (its newest version unless ``version`` is given).

        ``grants`` default to nothing: a script that opens an instrument without a grant
        gets ``E_DENIED``. Raises :class:`UnknownScript` for a name or version not stored.
        """
        if self._nursery is None:
            raise ScriptError("the script engine is not running; start ScriptEngine.run first")
        script = self.store.get(name, version)
        run = Run(
            self._next_id,
            script,
            resolver=self._resolver,
            grants=grants or Grants(),
            args=args or {},
            limits=limits or self.default_limits,
            limiter=self.limiter,
            on_results=self._on_results,
            parameter_log=self.parameter_log,
            safe_states=self.safe_states,
        )
        self._next_id += 1
        self._runs[run.id] = run
        self._forget_old()
        self._nursery.start_soon(run._execute, name=f"script:{name}#{run.id}")
        return run

    def runs(self) -> list[Run]:
        return list(self._runs.values())

    def get_run(self, run_id: int) -> Run:
        try:
            return self._runs[run_id]
        except KeyError:
            raise ScriptError(
                f"no run {run_id} (the engine remembers the last {KEEP_FINISHED} finished runs)"
            ) from None

    def _forget_old(self) -> None:
        finished = [r.id for r in self._runs.values() if r.state.finished]
        for run_id in finished[: max(len(finished) - KEEP_FINISHED, 0)]:
            del self._runs[run_id]
