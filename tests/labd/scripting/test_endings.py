"""How a run ends: the guest's ``cleanup`` on every ending, the lab's safe states after
abnormal ones (docs/scripting.md, "How a run ends")."""

from __future__ import annotations

import contextlib
import time

import pytest
import trio

from labd.safe_state import SafeState
from labd.scripting import (
    Grants,
    RunLimits,
    RunState,
    ScriptEngine,
    ScriptFailed,
    ScriptInvalid,
)
from labd.scripting.run import Run
from tests.labd.scripting.simlab import script_engine, sim_lab
from tests.labd.scripting.wat import imports

PSU_SAFE = {
    "psu": SafeState("psu", {"output": False, "voltage": "0 V"}),
    "stage": SafeState("stage", {"position": 1.0}),
    "meter": SafeState("meter", {"wavelength": "633 nm"}),
}
GRANTS = Grants.parse(["psu", "stage", "meter:Readable"])


def guest(run_body: str, cleanup_body: str | None = "") -> str:
    """A guest that opens the supply (voltage, switch) as handles 0 and 1, the stage as 2
    and the meter read-only as 3, sets the supply to 6 V with its output on, then runs
    ``run_body``; its ``cleanup`` logs "cleanup ran" and runs ``cleanup_body`` (None: no
    cleanup export)."""
    cleanup = (
        ""
        if cleanup_body is None
        else f"""(func (export "cleanup")
             (drop (call $log (i32.const 1) (i32.const 32) (i32.const 11))) {cleanup_body})"""
    )
    return f"""(module
  {imports("cap_get", "supply_set_voltage", "switch_set", "log", "sleep_ms", "result_row")}
  (memory (export "memory") 1)
  (data (i32.const 0) "psu") (data (i32.const 8) "stage") (data (i32.const 16) "meter")
  (data (i32.const 32) "cleanup ran")
  {cleanup}
  (func (export "run") (result i32)
    (drop (call $cap_get (i32.const 0) (i32.const 3) (i32.const 7)))
    (drop (call $cap_get (i32.const 0) (i32.const 3) (i32.const 8)))
    (drop (call $cap_get (i32.const 8) (i32.const 5) (i32.const 1)))
    (drop (call $cap_get (i32.const 16) (i32.const 5) (i32.const 3)))
    (drop (call $supply_set_voltage (i32.const 0) (f64.const 6)))
    (drop (call $switch_set (i32.const 1) (i32.const 1)))
    {run_body}))"""


SPIN = "(loop $l (br $l)) (i32.const 0)"
SLEEP = "(call $sleep_ms (i32.const 60000))"  # E_CANCELLED when stopped


async def ended(
    engine: ScriptEngine, source: str, limits: RunLimits | None = None, cancel_after: float = 0
) -> Run:
    await engine.store.upload("ending", source)
    run = engine.start("ending", grants=GRANTS, limits=limits)
    if cancel_after:
        await trio.sleep(cancel_after)
        run.cancel()
    with trio.fail_after(10), contextlib.suppress(ScriptFailed):
        await run.wait()
    return run


def lines(run: Run) -> list[str]:
    return [line.text for line in run.log]


@pytest.mark.parametrize(
    ("body", "limits", "cancel_after", "code"),
    [
        ("(i32.const 0)", None, 0, None),
        ("(unreachable)", None, 0, "trap"),
        (SPIN, RunLimits(fuel=10**6), 0, "out-of-fuel"),
        (SPIN, RunLimits(deadline_s=0.3), 0, "deadline"),
        (SLEEP, RunLimits(deadline_s=0.3), 0, "deadline"),
        (SLEEP, None, 0.2, "cancelled"),
        ("(i32.const -6)", None, 0, "device"),
    ],
    ids=[
        "success",
        "trap",
        "out-of-fuel",
        "deadline-spinning",
        "deadline-sleeping",
        "cancel",
        "failed",
    ],
)
def test_cleanup_runs_on_every_ending(
    body: str, limits: RunLimits | None, cancel_after: float, code: str | None
) -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, safe_states=PSU_SAFE) as engine:
            # the cleanup itself switches the output off, with host calls that work even
            # after a deadline or a cancel stopped run()
            source = guest(body, "(drop (call $switch_set (i32.const 1) (i32.const 0)))")
            run = await ended(engine, source, limits, cancel_after)
            assert (run.error.code if run.error else None) == code
            text = lines(run)
            assert "cleanup ran" in text
            ending = code or "success"
            assert any(t.startswith(f"[labd] cleanup after {ending} ran (") for t in text), text
            assert not await lab["psu"].is_on()
            safe = [t for t in text if t.startswith("[labd] safe state of")]
            if code is None:
                assert safe == [] and await lab["psu"].voltage_setpoint() == 6
            else:
                # applied after the cleanup, to what the run held for writing: the supply
                # and the stage, not the meter it only read
                assert safe == [
                    "[labd] safe state of psu applied: output = false, voltage = 0 V",
                    "[labd] safe state of stage applied: position = 1",
                ]
                assert text.index(safe[0]) > text.index("cleanup ran")
                assert await lab["psu"].voltage_setpoint() == 0
                assert await lab["meter"].get_parameter("wavelength") == 1064

    trio.run(main)


def test_a_failing_cleanup_is_logged_and_never_hides_the_outcome() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab, safe_states=PSU_SAFE) as engine:
            trapped = await ended(engine, guest("(i32.const 0)", "(unreachable)"))
            assert trapped.state is RunState.SUCCEEDED and trapped.error is None
            assert "[labd] cleanup after success failed: trap: unreachable (" in " ".join(
                lines(trapped)
            )
            assert await lab["psu"].is_on()  # a successful run: no safe state

            limits = RunLimits(deadline_s=0.5)
            started = time.monotonic()
            stuck = await ended(engine, guest(SPIN, "(loop $l (br $l))"), limits)
            assert stuck.error is not None and stuck.error.code == "deadline"
            assert time.monotonic() - started < 0.5 + 0.05 + 2  # cleanup: 10 % of 0.5 s
            assert any(
                "cleanup after deadline failed: ran past its 0.05 s" in t for t in lines(stuck)
            )
            assert not await lab["psu"].is_on()  # the safe state still applies

            hungry = await ended(engine, guest(SPIN, "(loop $l (br $l))"), RunLimits(fuel=10**6))
            assert hungry.error is not None and hungry.error.code == "out-of-fuel"
            assert any("cleanup after out-of-fuel failed: out of fuel" in t for t in lines(hungry))

    trio.run(main)


def test_no_cleanup_export_and_no_safe_state_configured() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            run = await ended(engine, guest("(unreachable)", None))
            assert run.error is not None and run.error.code == "trap"
            assert not any("cleanup" in t or "safe state" in t for t in lines(run))
            assert await lab["psu"].is_on()  # nothing configured: left as the script left it

    trio.run(main)


def test_a_cleanup_with_arguments_is_refused_at_upload() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            source = """(module (memory (export "memory") 1)
              (func (export "run") (result i32) (i32.const 0))
              (func (export "cleanup") (param i32)))"""
            with pytest.raises(ScriptInvalid, match=r"exports cleanup, but not as a function"):
                await engine.store.upload("bad", source)

    trio.run(main)


def test_a_safe_state_that_fails_is_logged() -> None:
    async def main() -> None:
        broken = {"psu": SafeState("psu", {"voltage": "99 V"})}  # above the supply's 30 V
        async with sim_lab() as lab, script_engine(lab, safe_states=broken) as engine:
            run = await ended(engine, guest("(unreachable)"))
            assert run.error is not None and run.error.code == "trap"
            (line,) = [t for t in lines(run) if "safe state" in t]
            assert line.startswith("[labd] safe state of psu (voltage = 99 V) failed:")

    trio.run(main)


ROWS = f"""(module
  {imports("result_row", "last_error", "log")}
  (memory (export "memory") 1)
  (data (i32.const 0) "x,power") (data (i32.const 16) "x,y") (data (i32.const 32) "x,,y")
  (func (export "run") (result i32) (local $i i32) (local $rc i32)
    (loop $rows
      (f64.store (i32.const 256) (f64.convert_i32_s (local.get $i)))
      (f64.store (i32.const 264) (f64.mul (f64.convert_i32_s (local.get $i)) (f64.const 0.5)))
      (local.set $rc (call $result_row (i32.const 0) (i32.const 7) (i32.const 256) (i32.const 2)))
      (if (i32.ne (local.get $rc) (local.get $i)) (then (return (i32.const 100))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $rows (i32.lt_s (local.get $i) (i32.const 5))))
    ;; other columns than the first row's, a count that does not match the names, an
    ;; empty name, values outside memory: each refused, and the table stays as it was
    (if (i32.ne (call $result_row (i32.const 16) (i32.const 3) (i32.const 256) (i32.const 2))
                (i32.const -1)) (then (return (i32.const 101))))
    (drop (call $log (i32.const 2) (i32.const 512) (call $last_error (i32.const 512) (i32.const 400))))
    (if (i32.ne (call $result_row (i32.const 0) (i32.const 7) (i32.const 256) (i32.const 3))
                (i32.const -1)) (then (return (i32.const 102))))
    (if (i32.ne (call $result_row (i32.const 32) (i32.const 4) (i32.const 256) (i32.const 3))
                (i32.const -1)) (then (return (i32.const 103))))
    (if (i32.ne (call $result_row (i32.const 0) (i32.const 7) (i32.const 65530) (i32.const 2))
                (i32.const -5)) (then (return (i32.const 104))))
    (i32.const 0)))"""


def test_rows_form_one_table_published_in_long_format() -> None:
    published = []

    async def main() -> None:
        async with (
            sim_lab() as lab,
            script_engine(lab, on_results=lambda run, batch: published.append(batch)) as engine,
        ):
            await engine.store.upload("rows", ROWS)
            run = engine.start("rows")
            await run.wait()
            table = run.table.to_arrow()
            assert table.to_pydict() == {"x": [0, 1, 2, 3, 4], "power": [0, 0.5, 1, 1.5, 2]}
            assert any(
                "row 5 has columns x,y, but the table's are x,power (fixed by its first row)" in t
                for t in lines(run)
            )

    trio.run(main)
    (batch,) = published
    # the pivot of the long format is the table
    frame = batch.to_pandas()
    pivot = frame.pivot(index="row", columns="name", values="value")
    assert pivot["power"].tolist() == [0, 0.5, 1, 1.5, 2]
    assert frame["row"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
