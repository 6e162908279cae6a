"""The script engine over RPC (labd/rpc/scripts.py, labd/client/scripts.py) against a real
``labd serve`` subprocess: upload, run, log, steer, typed failures, and who may do it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio

from capabilities import InvalidRequest, Movable, PermissionDenied, Readable
from labd import aio
from labd.client import connect, connect_blocking
from labd.client.session import open_session
from labd.contract import schema
from labd.scripting import ScriptFailed, ScriptInvalid
from tests.labd.rpc.conftest import LabdProcess
from tests.labd.scripting.wat import module

SCAN = (Path(__file__).resolve().parents[3] / "wasm_scripts/examples/wat/scan.wat").read_text()
SCAN_GRANTS = ["stage:Movable", "meter:Readable", "camera:FrameProducer"]

# Logs "tick" and reports the tick count every `ms` milliseconds, `n` times (arguments);
# pauses at each tick's checkpoint.
TICKER = module(
    "log", "sleep_ms", "checkpoint", "result_f64", "arg_f64",
    extra="""(data (i32.const 0) "tick") (data (i32.const 8) "ticks") (data (i32.const 16) "n")
             (data (i32.const 24) "ms") (data (i32.const 32) "which")""",
    body="""
    (local $i i32) (local $n i32) (local $ms i32) (local $rc i32)
    (local.set $n (i32.const 1000000))
    (local.set $ms (i32.const 20))
    (if (i32.eqz (call $arg_f64 (i32.const 16) (i32.const 1) (i32.const 64)))
      (then (local.set $n (i32.trunc_f64_s (f64.load (i32.const 64))))))
    (if (i32.eqz (call $arg_f64 (i32.const 24) (i32.const 2) (i32.const 64)))
      (then (local.set $ms (i32.trunc_f64_s (f64.load (i32.const 64))))))
    (drop (call $result_f64 (i32.const 32) (i32.const 5) (f64.const 1)))
    (block $done (loop $tick
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      (drop (call $log (i32.const 1) (i32.const 0) (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (drop (call $result_f64 (i32.const 8) (i32.const 5) (f64.convert_i32_s (local.get $i))))
      (local.set $rc (call $checkpoint))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (local.set $rc (call $sleep_ms (local.get $ms)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
      (br $tick)))
    (i32.const 0)""",
)  # fmt: skip

WHICH_2 = module(
    "result_f64",
    extra='(data (i32.const 0) "which")',
    body="(drop (call $result_f64 (i32.const 0) (i32.const 5) (f64.const 2))) (i32.const 0)",
)

SPIN = module(body="(loop $forever (br $forever)) (i32.const 0)")

# Starts a long move (the test daemon's stage does 2 mm/s) and waits for it to settle.
LONG_MOVE = module(
    "cap_get", "movable_position", "movable_move_abs", "movable_wait_settled",
    extra='(data (i32.const 0) "stage")',
    body="""
    (local $stage i32)
    (local.set $stage (call $cap_get (i32.const 0) (i32.const 5) (i32.const 1)))
    (drop (call $movable_position (local.get $stage) (i32.const 64) (i32.const 16)))
    (drop (call $movable_move_abs (local.get $stage)
                (f64.add (f64.load (i32.const 64)) (f64.const 6))))
    (call $movable_wait_settled (local.get $stage) (f64.const 0) (i32.const 64) (i32.const 16))""",
)  # fmt: skip


def run_client(daemon: LabdProcess, body: Any) -> None:
    """Run ``body(scripts, lab)`` as an async client of ``daemon``."""

    async def main() -> None:
        async with connect(daemon.address) as lab:
            with trio.fail_after(30):
                await body(await lab.scripts(), lab)

    aio.run(main)


def test_upload_run_scan_and_list(labd_daemon: LabdProcess) -> None:
    async def body(scripts: Any, lab: Any) -> None:
        assert await scripts.upload("scan", SCAN) == 1
        run = await scripts.run("scan", grants=SCAN_GRANTS, args={"steps": 21})
        results = await run.wait()
        assert results["peak_position"] == pytest.approx(3.0, abs=0.11)
        info = await run.info()
        assert (info.state, info.name, info.version) == ("succeeded", "scan", 1)
        assert info.fuel_used > 0 and info.ended_at and info.started_at
        assert [r.name for r in await run.results()] == [
            "peak_position", "peak_power", "spot_x_at_peak",
        ]  # fmt: skip
        (version,) = [v for v in await scripts.versions() if v.name == "scan"]
        assert version.version == 1 and len(version.sha256) == 64 and version.size > 100
        assert info.id in [r.id for r in await scripts.runs()]
        # A bad module is refused at upload, with the reason.
        with pytest.raises(ScriptInvalid, match="does not parse"):
            await scripts.upload("broken", "(module (func")

    run_client(labd_daemon, body)


def test_log_lines_arrive_while_the_script_runs(labd_daemon: LabdProcess) -> None:
    async def body(scripts: Any, lab: Any) -> None:
        await scripts.upload("ticker", TICKER)
        run = await scripts.run("ticker", args={"n": 10, "ms": 30})
        texts = []
        async with run.log() as lines:
            async for line in lines:
                if not texts:  # the first line comes while the script is still going
                    assert not (await run.info()).finished
                texts.append(line.text)
        assert texts == ["tick"] * 10
        assert lines.final is not None and lines.final.state == "succeeded"
        assert (await run.wait())["ticks"] == 10

    run_client(labd_daemon, body)


def test_cancel_stops_a_long_host_call_and_instruments_stay_ready(
    labd_daemon: LabdProcess,
) -> None:
    async def body(scripts: Any, lab: Any) -> None:
        await scripts.upload("long-move", LONG_MOVE)
        run = await scripts.run("long-move", grants=["stage:Movable"])
        while (await run.info()).state != "running":
            await trio.sleep(0.01)
        await trio.sleep(0.3)  # inside wait_settled now: the move takes 3 s
        started = time.perf_counter()
        await run.cancel()
        with pytest.raises(ScriptFailed) as failed:
            await run.wait()
        assert time.perf_counter() - started < 0.5
        assert failed.value.code == "cancelled"
        assert (await run.info()).state == "cancelled"
        states = {i.name: i.state for i in await lab.instruments()}
        assert set(states.values()) <= {"ready", "busy"}, states
        meter = await lab.instrument("meter").get(Readable)
        assert (await meter.read()).unit

    run_client(labd_daemon, body)


def test_pause_and_resume(labd_daemon: LabdProcess) -> None:
    async def body(scripts: Any, lab: Any) -> None:
        await scripts.upload("ticker", TICKER)
        run = await scripts.run("ticker", args={"ms": 10})
        while len(await run.results()) < 5:
            await trio.sleep(0.02)
        await run.pause()
        while (await run.info()).state != "paused":
            await trio.sleep(0.01)
        held = len(await run.results())
        await trio.sleep(0.3)
        assert len(await run.results()) == held  # no tick while paused
        await run.resume()
        while len(await run.results()) < held + 5:
            await trio.sleep(0.02)
        assert (await run.info()).state == "running"
        await run.cancel()
        with pytest.raises(ScriptFailed, match="cancelled"):
            await run.wait()

    run_client(labd_daemon, body)


def test_failures_reach_the_client_typed(labd_daemon: LabdProcess) -> None:
    async def body(scripts: Any, lab: Any) -> None:
        await scripts.upload("spin", SPIN)
        run = await scripts.run("spin", fuel=100_000)
        with pytest.raises(ScriptFailed) as out_of_fuel:
            await run.wait()
        assert out_of_fuel.value.code == "out-of-fuel"
        assert "raise the fuel limit" in out_of_fuel.value.message
        info = await run.info()
        assert (info.state, info.error_code) == ("failed", "out-of-fuel")

        run = await scripts.run("spin", deadline_s=0.2, fuel=10**15)
        with pytest.raises(ScriptFailed) as deadline:
            await run.wait()
        assert deadline.value.code == "deadline"

        await scripts.upload("scan", SCAN)
        run = await scripts.run("scan", grants=["stage:Movable", "meter:Readable"])
        with pytest.raises(ScriptFailed) as denied:
            await run.wait()
        assert denied.value.code == "denied"
        assert "camera" in denied.value.message

        with pytest.raises(InvalidRequest, match="unknown capability 'Teleport'"):
            await scripts.run("scan", grants=["stage:Teleport"])
        with pytest.raises(LookupError, match="no script named 'nope'"):
            await scripts.run("nope")

    run_client(labd_daemon, body)


def test_hot_swap_while_running(labd_daemon: LabdProcess) -> None:
    async def body(scripts: Any, lab: Any) -> None:
        first = await scripts.upload("swap", TICKER)
        v1 = await scripts.run("swap")
        while not await v1.results():
            await trio.sleep(0.01)
        second = await scripts.upload("swap", WHICH_2)
        assert second == first + 1
        v2 = await scripts.run("swap")
        assert (await v2.wait())["which"] == 2
        info = await v1.info()
        assert (info.version, info.state) == (first, "running")  # v1 is untouched
        await v1.cancel()

    run_client(labd_daemon, body)


def test_a_run_outlives_its_client(labd_daemon: LabdProcess) -> None:
    with connect_blocking(labd_daemon.address) as lab:
        scripts = lab.scripts()
        scripts.upload("ticker", TICKER)
        results_seq = {s.name: s.last_seq for s in lab.streams()}["scripts/results"]
        run_id = scripts.run("ticker", args={"n": 20, "ms": 25}).info().id
    # The starting client is gone; a second one sees the run finish.
    with connect_blocking(labd_daemon.address) as lab:
        run = lab.scripts().get_run(run_id)
        assert run.info().state == "running"
        assert run.wait(timeout=20)["ticks"] == 20
        assert {s.name: s.last_seq for s in lab.streams()}["scripts/results"] > results_seq


def test_leaving_wait_early_does_not_cancel_the_run(labd_daemon: LabdProcess) -> None:
    with connect_blocking(labd_daemon.address) as lab:
        scripts = lab.scripts()
        scripts.upload("ticker", TICKER)
        run = scripts.run("ticker", args={"n": 15, "ms": 20})
        with pytest.raises(TimeoutError):
            run.wait(timeout=0.05)
        assert run.info().state == "running"
        assert [line.text for line in run.lines()] == ["tick"] * 15
        assert run.wait()["ticks"] == 15


def test_a_restricted_instrument_holder_cannot_reach_the_engine(
    labd_daemon: LabdProcess,
) -> None:
    with connect_blocking(labd_daemon.address) as lab:
        token, _ = lab.instrument("stage").share()

    async def main() -> None:
        s: Any = schema.load()
        async with open_session(labd_daemon.address) as link:
            bootstrap = link.bootstrap
            instrument = (await link.call(lambda: bootstrap.redeem(token))).instrument
            # The Instrument capability is not a Lab, whatever it is cast to.
            with pytest.raises(RuntimeError, match=r"(?i)unimplemented|not implemented"):
                await link.call(lambda: instrument.cast_as(s.Lab).scripts())
            # ...and a sharing token does not unlock the Lab.
            with pytest.raises(PermissionDenied, match="wrong lab token"):
                await link.call(lambda: bootstrap.unlock(token))
            position = await link.call(lambda: instrument.capabilities())
            assert position.capabilities._has("movable")  # the share itself works

    aio.run(main)
    with connect_blocking(labd_daemon.address) as lab:
        assert lab.instrument("stage").get(Movable).position().unit == "mm"
