"""Hostile and broken guests are contained: the host, the lab and other runs carry on."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
import trio

from labd.scripting import Grants, RunLimits, RunState, ScriptEngine, ScriptFailed
from labd.scripting.abi import IMPORTS, Errno
from tests.labd.scripting.simlab import EXAMPLES, PEAK_MM, SCAN_GRANTS, script_engine, sim_lab
from tests.labd.scripting.wat import module

SPIN = module(body="(loop $forever (br $forever)) (i32.const 0)")


async def expect_failure(
    engine: ScriptEngine, source: str, code: str, **start: Any
) -> ScriptFailed:
    await engine.store.upload("hostile", source)
    run = engine.start("hostile", **start)
    with pytest.raises(ScriptFailed) as failed:
        await run.wait()
    assert failed.value.code == code, failed.value
    return failed.value


async def lab_still_works(engine: ScriptEngine, lab: dict[str, Any]) -> None:
    """Other instruments and later runs are unaffected."""
    assert (await lab["thermo"].temperature()).value > 0
    await engine.store.upload("scan", (EXAMPLES / "wat" / "scan.wat").read_text())
    results = await engine.start("scan", grants=SCAN_GRANTS, args={"steps": "11"}).wait()
    assert results["peak_position"] == pytest.approx(PEAK_MM, abs=0.11)


def test_infinite_loop_runs_out_of_fuel() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            error = await expect_failure(
                engine, SPIN, "out-of-fuel", limits=RunLimits(fuel=5_000_000)
            )
            assert "ran out of fuel after 5e+06 instructions; raise the fuel limit" in str(error)
            await lab_still_works(engine, lab)

    trio.run(main)


def test_infinite_loop_is_stopped_at_its_deadline() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            started = time.perf_counter()
            await expect_failure(
                engine, SPIN, "deadline", limits=RunLimits(fuel=10**15, deadline_s=0.2)
            )
            assert time.perf_counter() - started < 0.5
            await lab_still_works(engine, lab)

    trio.run(main)


MEMORY_BOMB = module(
    "result_f64",
    extra='(data (i32.const 0) "pages")',
    body="""
    (local $pages i32)
    (block $refused
      (loop $grow
        (br_if $refused (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
        (br $grow)))
    (drop (call $result_f64 (i32.const 0) (i32.const 5) (f64.convert_i32_u (memory.size))))
    (i32.const 0)""",
)


def test_memory_growth_stops_at_the_limit() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("bomb", MEMORY_BOMB)
            limit = 8 * 2**20
            run = engine.start("bomb", limits=RunLimits(memory_bytes=limit))
            results = await run.wait()
            assert results["pages"] * 65536 <= limit
            assert run.memory_bytes is not None and run.memory_bytes <= limit
            # A module that asks for more memory up front cannot start at all.
            error = await expect_failure(
                engine, module(body="(i32.const 0)", pages=1000), "instantiate",
                limits=RunLimits(memory_bytes=limit),
            )  # fmt: skip
            assert "memory limit 8 MiB" in str(error)
            await lab_still_works(engine, lab)

    trio.run(main)


DEEP = """(module (memory (export "memory") 1)
  (func $down (param i64) (result i64) (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
  (func (export "run") (result i32) (drop (call $down (i64.const 0))) (i32.const 0)))"""


def test_deep_recursion_overflows_the_stack_cleanly() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await expect_failure(
                engine, DEEP, "stack-overflow", limits=RunLimits(stack_bytes=64 * 1024)
            )
            await lab_still_works(engine, lab)

    trio.run(main)


# Every import that takes a pointer, called with one that lies (partly) outside memory.
# H = a valid handle of the right kind, F = a valid frame handle; EDGE straddles the end
# of the one-page memory, WILD is 0xFFFFFFF0, HUGE a length that wraps 32 bits.
EDGE, WILD, HUGE = 65536 - 4, -16, -1
BAD_POINTER_CALLS = {
    "last_error": f"{WILD} 100",
    "log": f"1 {EDGE} 100",
    "result_f64": f"{WILD} 4 (f64.const 1)",
    "arg_f64": f"{EDGE} 100 0",
    "arg_str": f"0 {HUGE} 0 0",
    "cap_get": f"{WILD} 5 1",
    "movable_position": f"$stage {EDGE} 16",
    "movable_wait_settled": f"$stage (f64.const 0) {WILD} 16",
    "movable_limits": f"$stage {EDGE} 16",
    "readable_read": f"$meter {EDGE} 16",
    "frame_stats": f"$frame {EDGE} 64",
    "frame_copy": f"$frame {EDGE} 100000",
    "exposure_get": f"$camera_exp {EDGE}",
    "temperature_read": f"$thermo {EDGE} 16",
    "supply_readback": f"$psu {WILD} 32",
    # parameters: the pointers are checked before the handle, so any handle will do
    "param_get_f64": f"$meter 0 4 {EDGE}",
    "param_set_f64": f"$meter {WILD} 4 (f64.const 1)",
    "param_get_text": f"$meter 0 4 {EDGE} 100",
    "param_set_text": f"$meter 0 4 {EDGE} 100",
    "result_row": f"{EDGE} 100 0 1",
}
POINTERLESS = {
    "abi_version", "time_us", "sleep_ms", "checkpoint", "movable_move_abs", "movable_move_rel",
    "stoppable_stop", "frame_snap", "frame_release", "exposure_set", "supply_set_voltage",
    "supply_set_current_limit", "switch_set", "switch_get",
}  # fmt: skip


def bad_pointer_guest() -> str:
    opens = {
        "stage": ("stage", 1),
        "meter": ("meter", 3),
        "camera": ("camera", 4),
        "camera_exp": ("camera", 5),
        "thermo": ("thermo", 6),
        "psu": ("psu", 7),
    }
    data, locals_, setup = [], ["(local $frame i32)"], []
    for i, (local, (instrument, kind)) in enumerate(opens.items()):
        data.append(f'(data (i32.const {64 * i}) "{instrument}")')
        locals_.append(f"(local ${local} i32)")
        setup.append(
            f"(local.set ${local} (call $cap_get (i32.const {64 * i}) (i32.const {len(instrument)}) (i32.const {kind})))"
            f"(if (i32.lt_s (local.get ${local}) (i32.const 0)) (then (return (i32.const 1000))))"
        )
    # The argument "x" exists, so arg_f64 gets as far as writing its output.
    data.append('(data (i32.const 1000) "x")')
    setup.append("(local.set $frame (call $frame_snap (local.get $camera)))")
    checks = []
    for i, (name, args) in enumerate(BAD_POINTER_CALLS.items(), start=1):
        operands = " ".join(
            f"(local.get {a})"
            if a.startswith("$")
            else a
            if a.startswith("(")
            else f"(i32.const {a})"
            for a in _split(args)
        )
        if name == "arg_f64":
            operands = f"(i32.const 1000) (i32.const 1) (i32.const {EDGE})"
        checks.append(
            f"(if (i32.ne (call ${name} {operands}) (i32.const {int(Errno.E_FAULT)}))"
            f" (then (return (i32.const {i}))))"
        )
    return module(
        "frame_snap", *BAD_POINTER_CALLS,
        extra="\n".join(data),
        body="\n".join([*locals_, *setup, *checks, "(i32.const 0)"]),
    )  # fmt: skip


def _split(args: str) -> list[str]:
    out: list[str] = []
    for token in args.split(" "):
        if out and out[-1].startswith("(") and not out[-1].endswith(")"):
            out[-1] += " " + token
        else:
            out.append(token)
    return out


def test_every_pointer_taking_import_is_in_the_bad_pointer_corpus() -> None:
    assert set(IMPORTS) == set(BAD_POINTER_CALLS) | POINTERLESS


def test_out_of_bounds_pointers_get_e_fault_from_every_import() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("pointers", bad_pointer_guest())
            run = engine.start("pointers", grants=Grants.everything(), args={"x": "1"})
            with contextlib.suppress(ScriptFailed):
                await run.wait()
            assert run.status is not None
            failed = list(BAD_POINTER_CALLS)[run.status - 1] if run.status else None
            assert run.status == 0, f"{failed} did not return E_FAULT"
            await lab_still_works(engine, lab)

    trio.run(main)


WASI_SLEEP = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; one clock subscription: relative, 60 s
  (data (i32.const 0) "\\01\\00\\00\\00\\00\\00\\00\\00" "\\00\\00\\00\\00\\00\\00\\00\\00"
                      "\\01\\00\\00\\00\\00\\00\\00\\00" "\\00\\b0\\8e\\f0\\0d\\00\\00\\00")
  (func (export "run") (result i32)
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))"""


def test_a_wasi_sleep_is_cancellable_and_bounded_by_the_deadline() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("nap", WASI_SLEEP)
            run = engine.start("nap")
            await trio.sleep(0.1)
            assert run.state is RunState.RUNNING
            cancelled = time.perf_counter()
            run.cancel()
            with pytest.raises(ScriptFailed) as failed:
                await run.wait()
            assert failed.value.code == "cancelled" and run.state is RunState.CANCELLED
            assert time.perf_counter() - cancelled < 0.05

            started = time.perf_counter()
            await expect_failure(engine, WASI_SLEEP, "deadline", limits=RunLimits(deadline_s=0.2))
            assert time.perf_counter() - started < 0.4
            await lab_still_works(engine, lab)

    trio.run(main)


# Sleeps until told to stop, then claims success anyway.
SHRUG = module("sleep_ms", body="(drop (call $sleep_ms (i32.const 60000))) (i32.const 0)")


def test_a_guest_that_returns_0_after_its_deadline_has_not_succeeded() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await expect_failure(engine, SHRUG, "deadline", limits=RunLimits(deadline_s=0.2))
            await engine.store.upload("shrug", SHRUG)
            run = engine.start("shrug")
            await trio.sleep(0.1)
            run.cancel()
            with pytest.raises(ScriptFailed) as failed:
                await run.wait()
            assert failed.value.code == "cancelled" and run.state is RunState.CANCELLED

    trio.run(main)


LOG_SPAM = module(
    "log",
    extra='(data (i32.const 0) "spam")',
    body="""
    (local $i i32)
    (drop (call $log (i32.const 1) (i32.const 0) (i32.const 20000)))  ;; one very long line
    (loop $more
      (drop (call $log (i32.const 1) (i32.const 0) (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_s (local.get $i) (i32.const 100000))))
    (i32.const 0)""",
)


def test_log_spam_is_rate_limited_and_long_lines_cut() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("spam", LOG_SPAM)
            limits = RunLimits(log_burst=50, log_lines_per_s=100, log_line_bytes=100)
            t0 = trio.current_time()
            run = engine.start("spam", limits=limits)
            await run.wait()
            elapsed = trio.current_time() - t0
            lines = [line.text for line in run.log]
            assert (
                lines[0].startswith("spam")
                and "[cut: 20000 bytes, at most 100 are kept]" in lines[0]
            )
            # The burst, then 100 lines/s for as long as the run lasted; never the 100k.
            assert 50 <= lines.count("spam") <= 50 + 100 * elapsed + 1
            dropped = [t for t in lines if "log line(s) dropped" in t]
            assert dropped and "faster than 100 lines/s" in dropped[-1]
            total_dropped = sum(int(t.split()[1]) for t in dropped)
            assert total_dropped + lines.count("spam") == 100_000

    trio.run(main)


TRAP = module(body="(unreachable) (i32.const 0)")


def test_two_runs_at_once_one_trapping_does_not_disturb_the_other() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("scan", (EXAMPLES / "wat" / "scan.wat").read_text())
            await engine.store.upload("trap", TRAP)
            scan = engine.start("scan", grants=SCAN_GRANTS)
            traps = [engine.start("trap") for _ in range(5)]
            for run in traps:
                with pytest.raises(ScriptFailed, match="unreachable") as failed:
                    await run.wait()
                assert failed.value.code == "trap"
            assert (await scan.wait())["peak_position"] == pytest.approx(PEAK_MM, abs=0.11)

    trio.run(main)


SLOW_MOVE = module(
    "cap_get", "movable_move_abs", "movable_wait_settled",
    extra='(data (i32.const 0) "stage")',
    body="""
    (local $stage i32)
    (local.set $stage (call $cap_get (i32.const 0) (i32.const 5) (i32.const 1)))
    (drop (call $movable_move_abs (local.get $stage) (f64.const 20)))
    (call $movable_wait_settled (local.get $stage) (f64.const 0) (i32.const 64) (i32.const 16))""",
)  # fmt: skip


@pytest.mark.parametrize("how", ["run.cancel", "scope"])
def test_cancel_during_a_long_host_call_returns_within_milliseconds(how: str) -> None:
    async def main() -> None:
        async with sim_lab(velocity=1.0, acceleration=10.0) as lab, script_engine(lab) as engine:
            await engine.store.upload("slow", SLOW_MOVE)
            run = engine.start("slow", grants=SCAN_GRANTS)
            await trio.sleep(0.2)
            assert run.state is RunState.RUNNING
            cancelled = time.perf_counter()
            if how == "run.cancel":
                run.cancel()
                with pytest.raises(ScriptFailed, match="was cancelled"):
                    await run.wait()
            else:
                with trio.move_on_after(0):  # the caller's own scope: e.g. an RPC cancel
                    await run.wait()
                run.cancel()
                with pytest.raises(ScriptFailed):
                    await run.wait()
            assert time.perf_counter() - cancelled < 0.05
            assert run.state is RunState.CANCELLED
            # The stage is still usable: stop it and go on.
            await lab["stage"].stop()
            assert (await lab["stage"].position()).value < 20

    trio.run(main)


def test_cancelling_the_engine_cancels_its_runs() -> None:
    async def main() -> None:
        async with sim_lab() as lab:
            engine = ScriptEngine(engine_store(), objects_resolver_for(lab))
            async with trio.open_nursery() as nursery:
                await nursery.start(engine.run)
                await engine.store.upload("spin", SPIN)
                run = engine.start("spin", limits=RunLimits(fuel=10**15))
                await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            assert run.state is RunState.CANCELLED

    trio.run(main)


def engine_store() -> Any:
    from labd.scripting import ScriptStore

    return ScriptStore()


def objects_resolver_for(lab: dict[str, Any]) -> Any:
    from labd.scripting import objects_resolver

    return objects_resolver(lab)
