"""Runs as a user sees them: results, arguments, logs, pause/resume, hot swap, grants."""

import time

import pyarrow as pa
import pytest
import trio

from labd.scripting import RESULT_SCHEMA, Grants, RunState, ScriptFailed
from labd.scripting.abi import Errno, Kind
from tests.labd.scripting.simlab import EXAMPLES, PEAK_MM, SCAN_GRANTS, script_engine, sim_lab
from tests.labd.scripting.wat import module


def test_wat_scan_finds_the_peak_and_publishes_results() -> None:
    published: list[pa.RecordBatch] = []

    async def main() -> None:
        async with (
            sim_lab() as lab,
            script_engine(lab, on_results=lambda run, batch: published.append(batch)) as engine,
        ):
            await engine.store.upload("scan", (EXAMPLES / "wat" / "scan.wat").read_text())
            run = engine.start("scan", grants=SCAN_GRANTS, args={"steps": "41"})
            results = await run.wait()
            assert run.state is RunState.SUCCEEDED and run.status == 0
            assert results["peak_position"] == pytest.approx(PEAK_MM, abs=0.051)
            # The camera spot sits at the sensor's centre column when the stage is at the peak.
            assert results["spot_x_at_peak"] == pytest.approx(32, abs=1.5)
            assert 0 < run.fuel_used < 100_000  # host time is free: only guest instructions count

    trio.run(main)
    (batch,) = published
    assert batch.schema.equals(RESULT_SCHEMA)
    named = batch.filter(batch.column("row").is_null())
    assert named.column("name").to_pylist() == ["peak_position", "peak_power", "spot_x_at_peak"]
    rows = batch.filter(batch.column("row").is_valid())  # the table, a row per point
    assert rows.column("name").to_pylist() == ["position", "power", "spot_x"] * 41
    assert rows.column("row").to_pylist() == [i for i in range(41) for _ in range(3)]
    assert set(batch.column("script").to_pylist()) == {"scan"}


ARGS = module(
    "arg_f64", "arg_str", "result_f64", "last_error", "log",
    extra="""(data (i32.const 0) "gain") (data (i32.const 8) "label") (data (i32.const 16) "nope")
             (data (i32.const 24) "length")""",
    body="""
    (local $rc i32)
    (if (call $arg_f64 (i32.const 0) (i32.const 4) (i32.const 64)) (then (return (i32.const 1))))
    (drop (call $result_f64 (i32.const 0) (i32.const 4) (f64.load (i32.const 64))))
    ;; a string argument: its total length comes back, the buffer gets what fits
    (local.set $rc (call $arg_str (i32.const 8) (i32.const 5) (i32.const 128) (i32.const 3)))
    (drop (call $result_f64 (i32.const 24) (i32.const 6) (f64.convert_i32_s (local.get $rc))))
    (drop (call $log (i32.const 1) (i32.const 128) (i32.const 3)))
    ;; a missing argument is E_NOTFOUND, and last_error says which
    (local.set $rc (call $arg_f64 (i32.const 16) (i32.const 4) (i32.const 64)))
    (drop (call $log (i32.const 2) (i32.const 256)
                (call $last_error (i32.const 256) (i32.const 200))))
    (local.get $rc)""",
)  # fmt: skip


def test_arguments_reach_the_guest() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("args", ARGS)
            run = engine.start("args", args={"gain": "2.5", "label": "hello"})
            with pytest.raises(ScriptFailed) as failed:
                await run.wait()
            assert failed.value.code == "notfound"
            assert {r.name: r.value for r in run.results} == {"gain": 2.5, "length": 5}
            texts = [line.text for line in run.log]
            assert texts[0] == "hel"
            assert (
                texts[1]
                == "no argument 'nope' was given (given: gain, label); pass --arg nope=VALUE"
            )

            bad = engine.start("args", args={"gain": "lots"})
            with pytest.raises(ScriptFailed, match="run\\(\\) returned 1"):
                await bad.wait()

    trio.run(main)


TICKER = module(
    "checkpoint", "sleep_ms", "log", "result_f64",
    extra='(data (i32.const 0) "tick") (global $n (mut i32) (i32.const 0))',
    body="""
    (loop $again
      (if (i32.lt_s (call $checkpoint) (i32.const 0)) (then (return (i32.const -10))))
      (drop (call $sleep_ms (i32.const 5)))
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (drop (call $log (i32.const 1) (i32.const 0) (i32.const 4)))
      (br_if $again (i32.lt_s (global.get $n) (i32.const 40))))
    (drop (call $result_f64 (i32.const 0) (i32.const 4) (f64.convert_i32_s (global.get $n))))
    (i32.const 0)""",
)  # fmt: skip


def test_pause_holds_the_run_at_a_checkpoint_and_resume_continues() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("ticker", TICKER)
            run = engine.start("ticker", grants=Grants())
            await trio.sleep(0.05)
            run.pause()
            while run.state is not RunState.PAUSED:
                await trio.sleep(0.005)
            ticks = len(run.log)
            await trio.sleep(0.1)
            assert len(run.log) == ticks and 0 < ticks < 40
            run.resume()
            assert await run.wait() == {"tick": 40}

    trio.run(main)


def test_log_can_be_followed_live() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("ticker", TICKER)
            run = engine.start("ticker")
            seen = [line.text async for line in run.follow_log()]
            assert seen == ["tick"] * 40
            assert run.state is RunState.SUCCEEDED

    trio.run(main)


def versioned(version: int) -> str:
    return module(
        "sleep_ms", "result_f64",
        extra='(data (i32.const 0) "version")',
        body=f"""(drop (call $sleep_ms (i32.const 200)))
        (drop (call $result_f64 (i32.const 0) (i32.const 7) (f64.const {version})))
        (i32.const 0)""",
    )  # fmt: skip


def test_hot_swap_next_run_gets_the_new_version_and_the_running_one_finishes() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("exp", versioned(1))
            old = engine.start("exp")
            await trio.sleep(0.05)
            assert old.state is RunState.RUNNING
            assert (await engine.store.upload("exp", versioned(2))).version == 2
            new = engine.start("exp")
            pinned = engine.start("exp", version=1)
            assert await old.wait() == {"version": 1}
            assert await new.wait() == {"version": 2}
            assert await pinned.wait() == {"version": 1}
            assert (old.script.version, new.script.version) == (1, 2)

    trio.run(main)


def open_as(instrument: str, kind: Kind) -> str:
    n = len(instrument)
    return module(
        "cap_get",
        extra=f'(data (i32.const 0) "{instrument}")',
        body=f"(call $cap_get (i32.const 0) (i32.const {n}) (i32.const {int(kind)}))",
    )


@pytest.mark.parametrize(
    ("instrument", "kind", "grants", "expected"),
    [
        ("stage", Kind.MOVABLE, ["stage:Movable"], 0),
        ("stage", Kind.MOVABLE, ["meter:Readable"], Errno.E_DENIED),
        ("stage", Kind.STOPPABLE, ["stage:Movable"], Errno.E_DENIED),
        ("stage", Kind.STOPPABLE, ["stage"], 0),
        ("meter", Kind.MOVABLE, ["*"], Errno.E_KIND),
        ("cryostat", Kind.READABLE, ["*"], Errno.E_NOTFOUND),
    ],
)
def test_grants_decide_what_a_run_can_open(
    instrument: str, kind: Kind, grants: list[str], expected: int
) -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("open", open_as(instrument, kind))
            run = engine.start("open", grants=Grants.parse(grants))
            if expected == 0:
                await run.wait()
                assert run.status == 0
            else:
                with pytest.raises(ScriptFailed) as failed:
                    await run.wait()
                assert failed.value.code == Errno(expected).slug
                assert run.status == expected

    trio.run(main)


def test_denied_message_says_how_to_grant() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("open", open_as("stage", Kind.MOVABLE))
            with pytest.raises(ScriptFailed, match="run it with --grant stage:Movable") as failed:
                await engine.start("open", grants=Grants.parse(["meter"])).wait()
            assert failed.value.code == "denied"

    trio.run(main)


def test_limits_are_validated() -> None:
    from labd.scripting import RunLimits

    with pytest.raises(ValueError, match="fuel must be a number > 0"):
        RunLimits(fuel=0)
    with pytest.raises(ValueError, match="unknown run limit"):
        RunLimits().with_overrides(fuell=3)
    assert RunLimits().with_overrides(fuel=5, deadline_s=None).fuel == 5


def test_runs_wait_for_a_free_slot() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, max_concurrent=1) as engine:
            await engine.store.upload("exp", versioned(1))
            started = time.perf_counter()
            first, second = engine.start("exp"), engine.start("exp")
            await trio.sleep(0.05)
            states = {first.state, second.state}
            assert states == {RunState.RUNNING, RunState.QUEUED}
            await first.wait()
            await second.wait()
            assert time.perf_counter() - started >= 0.4  # one after the other, 0.2 s each

    trio.run(main)
