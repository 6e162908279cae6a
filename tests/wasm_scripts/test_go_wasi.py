"""A Go guest runs on the real WASI layer: its output reaches the run's log, its sleeps
are cancellable and count against the deadline."""

import time
from pathlib import Path

import pytest
import trio

from labd.scripting import Grants, RunLimits, RunState, ScriptFailed, ScriptStore
from labd.scripting.abi import LogLevel
from labd.scripting.compile import compile_source
from tests.labd.scripting.simlab import script_engine, sim_lab

SLEEPER = Path(__file__).with_name("sleeper.go")


@pytest.fixture(scope="module")
def store() -> ScriptStore:
    """One store for the module: wasmtime takes over a second to compile Go's 2.5 MB."""
    store = ScriptStore()
    store.upload_sync("sleeper", compile_source(SLEEPER))
    return store


def test_fmt_output_reaches_the_run_log(store: ScriptStore) -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, store) as engine:
            run = engine.start("sleeper", args={"ms": "20"})
            started = time.monotonic()
            await run.wait()
            assert time.monotonic() - started >= 0.02
            lines = [(line.level, line.text) for line in run.log]
            assert lines == [
                (LogLevel.INFO, "sleeping for 20 ms"),
                (LogLevel.WARN, "a line to stderr"),
                (LogLevel.INFO, "woke up"),
            ]

    trio.run(main)


def test_time_sleep_is_cancelled_promptly(store: ScriptStore) -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, store) as engine:
            run = engine.start("sleeper", args={"ms": "60000"})
            async for line in run.follow_log():
                if "sleeping" in line.text:
                    break
            await trio.sleep(0.05)  # well inside time.Sleep by now
            cancelled_at = time.monotonic()
            run.cancel()
            with pytest.raises(ScriptFailed) as failed:
                await run.wait()
            assert time.monotonic() - cancelled_at < 0.5
            assert failed.value.code == "cancelled"
            assert run.state is RunState.CANCELLED
            assert "woke up" not in [line.text for line in run.log]

    trio.run(main)


def test_time_sleep_counts_against_the_deadline(store: ScriptStore) -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, store) as engine:
            run = engine.start("sleeper", args={"ms": "60000"}, limits=RunLimits(deadline_s=0.3))
            with trio.fail_after(5), pytest.raises(ScriptFailed) as failed:
                await run.wait()
            assert failed.value.code == "deadline"
            assert run.ended_at is not None and run.started_at is not None
            assert run.ended_at - run.started_at < 1.0

    trio.run(main)


def test_a_go_script_needs_no_grants_to_run(store: ScriptStore) -> None:
    # WASI gives nothing that needs a grant: no files, no sockets, no environment.
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, store) as engine:
            assert await engine.start("sleeper", grants=Grants(), args={"ms": "1"}).wait() == {}

    trio.run(main)


def test_a_panic_fails_the_run_with_go_s_message_in_the_log(store: ScriptStore) -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, store) as engine:
            run = engine.start("sleeper", args={"panic": "the beam is gone"})
            with pytest.raises(ScriptFailed, match="unreachable") as failed:
                await run.wait()
            assert failed.value.code == "trap"  # Go's runtime ends a panic with a trap
            warnings = [line.text for line in run.log if line.level is LogLevel.WARN]
            assert "panic: the beam is gone" in warnings
            assert "main.run()" in warnings  # and the goroutine's stack
            assert any("labdscript/sleeper.go:" in line for line in warnings)

    trio.run(main)
