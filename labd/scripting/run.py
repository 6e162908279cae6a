"""One run of a script: its own wasmtime Engine and Store, its limits, log and results.

Each run gets a fresh Engine (about 0.1 ms with the module deserialized from the store's
compiled artifact), so bumping the epoch to stop it can never interrupt another run, and
its stack limit can differ from its neighbours'. The guest executes in a worker thread
under the engine's :class:`trio.CapacityLimiter`; see :mod:`labd.scripting.control` for how
it is stopped and paused, and :mod:`labd.scripting.host` for what it can call.

Every ending is made safe in two steps, both written to the run's log and the daemon's
(docs/scripting.md, "How a run ends"): the guest's optional ``cleanup`` export runs with
a budget of its own, whatever stopped ``run``; then, if the run ended abnormally, each
instrument it held for writing is put in the safe state the lab config gives it.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import trio
import wasmtime

from labd import parameters
from labd.contract.script_errors import ScriptFailed
from labd.safe_state import SafeState
from labd.scripting import wasi
from labd.scripting.abi import Errno, LogLevel
from labd.scripting.control import RunControl
from labd.scripting.grants import Grants
from labd.scripting.host import Host, Resolver
from labd.scripting.limits import RunLimits
from labd.scripting.results import Result, Table, results_to_batch
from labd.scripting.store import ScriptVersion, wasm_config

if TYPE_CHECKING:
    from labd.parameters import ParameterLog

log = logging.getLogger("labd.scripting")

LOG_HISTORY = 10_000
"""Log lines a run keeps for late readers; older ones are forgotten (and counted)."""

ResultsSink = Callable[["Run", pa.RecordBatch], None]


class RunState(enum.Enum):
    QUEUED = "queued"
    """Waiting for a free script slot."""
    RUNNING = "running"
    PAUSED = "paused"
    """Stopped at a ``checkpoint`` until :meth:`Run.resume`."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: float
    level: LogLevel
    text: str

    def __str__(self) -> str:
        return f"{self.level.name.lower():5} {self.text}"


class Run:
    """A script run. Created by :meth:`ScriptEngine.start`; observe it, wait for it, steer it."""

    def __init__(
        self,
        run_id: int,
        script: ScriptVersion,
        *,
        resolver: Resolver,
        grants: Grants,
        args: Mapping[str, str],
        limits: RunLimits,
        limiter: trio.CapacityLimiter,
        on_results: ResultsSink | None = None,
        parameter_log: ParameterLog | None = None,
        safe_states: Mapping[str, SafeState] | None = None,
    ) -> None:
        self.id = run_id
        self.script = script
        self.args = dict(args)
        self.grants = grants
        self.limits = limits
        self.state = RunState.QUEUED
        self.error: ScriptFailed | None = None
        self.status: int | None = None
        """What the guest's ``run()`` returned."""
        self.fuel_used: int | None = None
        self.memory_bytes: int | None = None
        """Size of the guest's linear memory when it finished."""
        self.results: list[Result] = []
        self.table = Table()
        """The rows the script emitted with ``result_row``."""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._limiter = limiter
        self._on_results = on_results
        self._resolver = resolver
        self._safe_states = dict(safe_states or {})
        self._parameter_log = parameter_log
        self._exports: tuple[wasmtime.Store, wasmtime.Func] | None = None
        """The store and ``cleanup`` export, once the guest is instantiated and has one."""
        self._engine = wasmtime.Engine(wasm_config(limits.stack_bytes))
        self._control = RunControl(self._engine)
        self._control.on_pause_change = self._pause_changed
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._log: deque[LogLine] = deque(maxlen=LOG_HISTORY)
        self._log_total = 0
        self._log_changed = trio.Event()
        self._host = Host(
            control=self._control,
            resolver=resolver,
            grants=grants,
            args=self.args,
            limits=limits,
            emit_log=self._log_from_guest,
            emit_result=self._result_from_guest,
            emit_row=self._row_from_guest,
            by=f"script {script.name} run {run_id}",
            parameter_log=parameter_log,
        )

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.script.name} v{self.script.version} {self.state.value}>"

    # --- steering -----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the run now (within milliseconds, even inside a host call)."""
        self._scope.cancel()

    def pause(self) -> None:
        """Pause at the guest's next ``checkpoint`` call; ``state`` becomes PAUSED there."""
        if not self.state.finished:
            self._control.pause()

    def resume(self) -> None:
        self._control.resume()

    @property
    def pause_requested(self) -> bool:
        return self._control.pause_requested

    async def wait(self) -> dict[str, float]:
        """Wait for the end; returns the last value of each result, raises :class:`ScriptFailed`."""
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return {r.name: r.value for r in self.results}

    @property
    def log(self) -> list[LogLine]:
        """The log lines kept so far (the last :data:`LOG_HISTORY`)."""
        return list(self._log)

    async def follow_log(self) -> AsyncIterator[LogLine]:
        """Every kept log line, then each new one as it comes, until the run ends."""
        seen = self._log_total - len(self._log)
        while True:
            first = self._log_total - len(self._log)
            seen = max(seen, first)
            while seen < self._log_total:
                yield self._log[seen - first]
                seen += 1
            if self._done.is_set():
                return
            await self._log_changed.wait()

    # --- log and results, from the guest thread ----------------------------------------

    def _log_from_guest(self, level: LogLevel, text: str) -> None:
        dropped = self._host.dropped_log_lines
        if dropped:
            self._host.dropped_log_lines = 0
            self._control.call_sync(self._append_log, LogLevel.WARN, self._dropped_note(dropped))
        self._control.call_sync(self._append_log, level, text)

    def _dropped_note(self, dropped: int) -> str:
        return (
            f"[labd] {dropped} log line(s) dropped: the script logged faster than"
            f" {self.limits.log_lines_per_s:g} lines/s (bursts of {self.limits.log_burst})"
        )

    def _append_log(self, level: LogLevel, text: str) -> None:
        self._log.append(LogLine(time.time(), level, text))
        self._log_total += 1
        self._log_changed.set()
        self._log_changed = trio.Event()

    def _result_from_guest(self, name: str, value: float) -> None:
        self.results.append(Result(name, value, time.time()))

    def _row_from_guest(self, columns: tuple[str, ...], values: tuple[float, ...]) -> int:
        return self.table.append(columns, values, time.time())

    def _pause_changed(self) -> None:
        if not self.state.finished:
            self.state = RunState.PAUSED if self._control.paused else RunState.RUNNING

    # --- execution ----------------------------------------------------------------------

    async def _execute(self) -> None:
        """Run to the end; never raises (the outcome is in ``state`` and ``error``)."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._control.watchdog, self.limits.deadline_s)
                    try:
                        await trio.to_thread.run_sync(self._guest_main, limiter=self._limiter)
                    finally:
                        self._control.guest_done = True
                        nursery.cancel_scope.cancel()
            if self._scope.cancelled_caught and self.error is None:
                self.error = self._failure("cancelled")
            if self.error is not None and self._host.held_for_writing:
                # Shielded: a cancelled run, or a daemon shutting down, still makes safe
                # what the script left (each safe state is bounded in time).
                with trio.CancelScope(shield=True):
                    await self._apply_safe_states()
        finally:
            self._finish()

    def _finish(self) -> None:
        self.ended_at = time.time()
        if self._host.dropped_log_lines:
            self._append_log(LogLevel.WARN, self._dropped_note(self._host.dropped_log_lines))
            self._host.dropped_log_lines = 0
        if self.error is None and self.status is None:
            self.error = self._failure("cancelled")  # cancelled before the guest started
        if self.error is None:
            self.state = RunState.SUCCEEDED
        elif self.error.code == "cancelled":
            self.state = RunState.CANCELLED
        else:
            self.state = RunState.FAILED
        if self.error is not None:
            self._append_log(LogLevel.ERROR, f"[labd] {self.error}")
        if (self.results or self.table.rows) and self._on_results is not None:
            batch = results_to_batch(
                self.id, self.script.name, self.script.version, self.results, self.table
            )
            self._on_results(self, batch)
        self._done.set()
        self._log_changed.set()

    def _guest_main(self) -> None:
        """The guest thread: instantiate, call ``run``, and classify how it ended."""
        self.started_at = time.time()
        self.state = RunState.RUNNING
        limits = self.limits
        store = wasmtime.Store(self._engine)
        store.set_fuel(limits.fuel)
        store.set_epoch_deadline(1)
        store.set_limits(memory_size=limits.memory_bytes, table_elements=1_000_000, memories=1)
        # Checked after the deadline is armed: a stop that came earlier bumped the epoch
        # before this store existed, and would otherwise be missed.
        if self._control.stop_reason is not None:
            self.error = self._failure(self._control.stop_reason)
            return
        linker = wasmtime.Linker(self._engine)
        stdout = wasi.LineSplitter(LogLevel.INFO, self._host.log_line)
        stderr = wasi.LineSplitter(LogLevel.WARN, self._host.log_line)
        if self.script.uses_wasi:
            wasi.configure(
                store, linker, self._host, self._control, self.script.name, stdout, stderr
            )
        self._host.define(linker, self.script.imports)
        try:
            module = self.script.load(self._engine)
            instance = linker.instantiate(store, module)
            exports = instance.exports(store)
            memory = exports["memory"]
            assert isinstance(memory, wasmtime.Memory)
            self._host.memory = memory
            cleanup = exports.get("cleanup")
            if isinstance(cleanup, wasmtime.Func):
                self._exports = (store, cleanup)
            init = exports.get("_initialize")
            if isinstance(init, wasmtime.Func):
                init(store)
            run = exports["run"]
            assert isinstance(run, wasmtime.Func)
            status = run(store)
            self.status = int(status)
            self.error = self._status_failure(self.status)
        except wasmtime.ExitTrap as e:
            self.status = e.code
            if e.code != 0:
                self.error = self._failure("exit", f"exited with status {e.code}")
        except wasmtime.Trap as trap:
            self.error = self._trap_failure(trap)
        except wasmtime.WasmtimeError as e:
            self.error = self._failure("instantiate", _first_line(str(e)))
        finally:
            stdout.flush()
            stderr.flush()
            self.fuel_used = limits.fuel - store.get_fuel()
            if self._host.memory is not None:
                self.memory_bytes = self._host.memory.data_len(store)
        if self._exports is not None:
            self._cleanup(*self._exports, stdout, stderr)
            self._exports = None  # a finished run keeps no store (its memory) alive

    def _cleanup(
        self,
        store: wasmtime.Store,
        cleanup: wasmtime.Func,
        stdout: wasi.LineSplitter,
        stderr: wasi.LineSplitter,
    ) -> None:
        """Call the guest's ``cleanup`` with its own budget, after ``run`` ended in any way.

        The store stays usable after a trap: fuel and the epoch deadline are set afresh. A
        cleanup that fails is logged; it never changes how the run ended.
        """
        fuel, deadline_s = self.limits.cleanup_budget
        timer = self._control.begin_cleanup(deadline_s)
        store.set_fuel(fuel)
        store.set_epoch_deadline(1)
        started = time.perf_counter()
        failure = ""
        try:
            status = cleanup(store)
            if isinstance(status, int) and status != 0:
                failure = f"returned {status}"
        except wasmtime.ExitTrap as e:
            failure = f"exited with status {e.code}" if e.code else ""
        except wasmtime.Trap as trap:
            failure = self._cleanup_trap(trap, fuel, deadline_s)
        except wasmtime.WasmtimeError as e:
            failure = _first_line(str(e))
        finally:
            timer.cancel()
            stdout.flush()
            stderr.flush()
        took = f"{(time.perf_counter() - started) * 1000:.1f} ms, {fuel - store.get_fuel()} instructions"
        ending = self.error.code if self.error is not None else "success"
        if failure:
            self._note(LogLevel.ERROR, f"cleanup after {ending} failed: {failure} ({took})")
        else:
            self._note(LogLevel.INFO, f"cleanup after {ending} ran ({took})")

    def _cleanup_trap(self, trap: wasmtime.Trap, fuel: int, deadline_s: float) -> str:
        code = trap.trap_code
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return f"out of fuel: its budget is {fuel:.3g} instructions"
        if code == wasmtime.TrapCode.INTERRUPT:
            return f"ran past its {deadline_s:g} s deadline"
        if code is not None:
            return f"trap: {code.name.lower().replace('_', ' ')}"
        return f"trap: {_first_line(trap.message)}"

    def _note(self, level: LogLevel, text: str) -> None:
        """A line of labd's own about this run: in its log (guest or Trio thread) and the daemon's."""
        log.log(
            {LogLevel.ERROR: logging.ERROR, LogLevel.WARN: logging.WARNING}.get(
                level, logging.INFO
            ),
            "%s run %d: %s",
            self.script.label,
            self.id,
            text,
        )
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:  # the guest thread
            self._control.call_sync(self._append_log, level, f"[labd] {text}")
        else:
            self._append_log(level, f"[labd] {text}")

    async def _apply_safe_states(self) -> None:
        """Put each instrument the run held for writing in its configured safe state."""
        by = f"safe state after script {self.script.name} run {self.id}"

        async def set_parameter(handle: Any, name: str, value: object) -> None:
            await parameters.set_value(handle, name, value, by=by, log_to=self._parameter_log)

        for name in self._host.held_for_writing:
            safe = self._safe_states.get(name)
            if safe is None:
                continue
            try:
                with trio.fail_after(self.limits.safe_state_timeout_s):
                    await safe.apply(self._resolver, set_parameter)
            except trio.TooSlowError:
                self._note(
                    LogLevel.ERROR,
                    f"safe state of {name} ({safe.describe()}) not applied: it took longer"
                    f" than {self.limits.safe_state_timeout_s:g} s",
                )
            except Exception as e:
                self._note(LogLevel.ERROR, f"safe state of {name} ({safe.describe()}) failed: {e}")
            else:
                self._note(LogLevel.WARN, f"safe state of {name} applied: {safe.describe()}")

    # --- how it ended -------------------------------------------------------------------

    def _trap_failure(self, trap: wasmtime.Trap) -> ScriptFailed:
        code = trap.trap_code
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return self._failure("out-of-fuel")
        if code == wasmtime.TrapCode.INTERRUPT:
            return self._failure(self._control.stop_reason or "cancelled")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return self._failure("stack-overflow")
        kind = code.name.lower().replace("_", " ") if code is not None else "trap"
        return self._failure("trap", f"{kind}: {_first_line(trap.message)}")

    def _status_failure(self, status: int) -> ScriptFailed | None:
        # A run stopped by its deadline or a cancel ended that way, whatever run() returned
        # (a guest that shrugs off E_CANCELLED and returns 0 has not succeeded: its
        # instruments still get their safe state).
        if self._control.stop_reason is not None:
            return self._failure(self._control.stop_reason)
        if status == 0:
            return None
        last = self._host.last_error
        if status < 0:
            try:
                errno = Errno(status)
            except ValueError:
                return self._failure("script-error", f"run() returned {status}")
            why = f": {last}" if last else ""
            return self._failure(errno.slug, f"run() returned {errno.name}{why}")
        return self._failure("script-error", f"run() returned {status}")

    def _failure(self, code: str, detail: str = "") -> ScriptFailed:
        label, lim = self.script.label, self.limits
        messages = {
            "out-of-fuel": f"{label} ran out of fuel after {lim.fuel:.3g} instructions;"
            " raise the fuel limit (--fuel)",
            "deadline": f"{label} ran past its {lim.deadline_s:g} s deadline;"
            " raise it (--deadline) or make the script finish sooner",
            "cancelled": f"{label} was cancelled",
            "stack-overflow": f"{label} overflowed its {lim.stack_bytes // 1024} KiB stack"
            " (runaway recursion?); raise --stack if the depth is intended",
        }
        message = messages.get(code) or f"{label} failed: {detail}"
        if code == "instantiate":
            message = f"{label} could not start: {detail} (memory limit {lim.memory_bytes // 2**20} MiB; --memory raises it)"
        return ScriptFailed(code, message)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
