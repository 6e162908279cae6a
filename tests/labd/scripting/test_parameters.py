"""Scripts read and set instrument parameters: ``param_*`` on a CONFIGURABLE handle.

Most tests run WAT guests against a small Configurable test double (every parameter
kind, a read-only one); the end-to-end ones at the bottom go through the real
Supervisor, a simulated instrument and the daemon's ParameterLog.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from capabilities import Configurable, Parameter, ParameterValue
from labd.config import InstrumentSpec
from labd.parameters import ParameterLog
from labd.scripting import Grants, ScriptEngine, ScriptFailed, ScriptStore, supervisor_resolver
from labd.scripting.abi import Errno, Kind
from labd.streams import StreamHub
from labd.supervisor import Supervisor
from tests.labd.scripting.simlab import EXAMPLES, script_engine
from tests.labd.scripting.wat import module
from wasm_scripts import build

PARAMETERS = [
    Parameter("wavelength", "float", unit="nm", low=400, high=1800),
    Parameter("averages", "int", low=1, high=1000),
    Parameter("auto_range", "bool"),
    Parameter("speed", "choice", choices=("slow", "fast")),
    Parameter("label", "text"),
    Parameter("serial", "text", writable=False),
]


class Tunable:
    """A Configurable test double: keeps what it is set to, like a well-behaved driver."""

    def __init__(self) -> None:
        self.values: dict[str, ParameterValue] = {
            "wavelength": 633.0,
            "averages": 10,
            "auto_range": False,
            "speed": "slow",
            "label": "",
            "serial": "SN-42",
        }
        self.sets: list[tuple[str, ParameterValue]] = []

    async def parameters(self) -> Sequence[Parameter]:
        return PARAMETERS

    async def get_parameter(self, name: str) -> ParameterValue:
        return self.values[name]

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        self.sets.append((name, value))
        self.values[name] = value


def test_the_double_is_configurable() -> None:
    assert isinstance(Tunable(), Configurable)


# Memory map of the guests below: instrument name at 0, parameter name at 32, a value text
# at 64, the f64 output at 512, the text buffer at 1024.
NAME, VALUE, OUT, BUF = 32, 64, 512, 1024
IMPORTS = (
    "cap_get", "param_get_f64", "param_set_f64", "param_get_text", "param_set_text",
    "result_f64", "log", "last_error",
)  # fmt: skip


def guest(call: str, parameter: str, value: str = "", instrument: str = "dev") -> str:
    """A guest that opens ``instrument`` as CONFIGURABLE and makes one ``call`` on it.

    It publishes what the call returned as ``rc``, the f64 output as ``value``, logs the
    text buffer (up to what was returned) and returns the call's code if it failed.
    """
    return module(
        *IMPORTS,
        extra=f"""(data (i32.const 0) "{instrument}") (data (i32.const {NAME}) "{parameter}")
                  (data (i32.const {VALUE}) "{value}")
                  (data (i32.const 200) "rc") (data (i32.const 208) "value")""",
        body=f"""
        (local $h i32) (local $rc i32)
        (local.set $h (call $cap_get (i32.const 0) (i32.const {len(instrument)})
                                     (i32.const {int(Kind.CONFIGURABLE)})))
        (if (i32.lt_s (local.get $h) (i32.const 0)) (then (return (local.get $h))))
        (local.set $rc {call.format(h="(local.get $h)", name=f"(i32.const {NAME}) (i32.const {len(parameter)})", value=f"(i32.const {VALUE}) (i32.const {len(value.encode())})")})
        (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
        (drop (call $result_f64 (i32.const 200) (i32.const 2) (f64.convert_i32_s (local.get $rc))))
        (drop (call $result_f64 (i32.const 208) (i32.const 5) (f64.load (i32.const {OUT}))))
        (drop (call $log (i32.const 1) (i32.const {BUF}) (local.get $rc)))
        (i32.const 0)""",
    )


GET_F64 = f"(call $param_get_f64 {{h}} {{name}} (i32.const {OUT}))"
GET_TEXT = f"(call $param_get_text {{h}} {{name}} (i32.const {BUF}) (i32.const 256))"
SET_TEXT = "(call $param_set_text {h} {name} {value})"


def set_f64(value: float) -> str:
    return f"(call $param_set_f64 {{h}} {{name}} (f64.const {value!r}))"


GRANT = Grants.parse(["dev:Configurable"])


async def run_guest(
    engine: ScriptEngine, source: str, grants: Grants = GRANT
) -> tuple[dict[str, float], list[str]]:
    await engine.store.upload("params", source)
    run = engine.start("params", grants=grants)
    results = await run.wait()
    return results, [line.text for line in run.log]


async def expect_error(engine: ScriptEngine, source: str, errno: Errno, message: str) -> None:
    await engine.store.upload("params", source)
    with pytest.raises(ScriptFailed, match=message) as failed:
        await engine.start("params", grants=GRANT).wait()
    assert failed.value.code == errno.slug


def test_numbers_and_bools_cross_as_f64() -> None:
    async def main() -> None:
        dev = Tunable()
        async with script_engine({"dev": dev}) as engine:
            results, _ = await run_guest(engine, guest(set_f64(1064.0), "wavelength"))
            assert dev.values["wavelength"] == 1064.0
            results, _ = await run_guest(engine, guest(GET_F64, "wavelength"))
            assert results == {"rc": 0, "value": 1064.0}

            await run_guest(engine, guest(set_f64(64.0), "averages"))
            assert dev.sets[-1] == ("averages", 64)  # an int parameter gets an int

            await run_guest(engine, guest(set_f64(2.0), "auto_range"))  # nonzero: on
            assert dev.values["auto_range"] is True
            results, _ = await run_guest(engine, guest(GET_F64, "auto_range"))
            assert results["value"] == 1.0

    trio.run(main)


def test_text_sets_quantities_bool_words_and_choices() -> None:
    async def main() -> None:
        dev = Tunable()
        async with script_engine({"dev": dev}) as engine:
            for parameter, text, held in [
                ("wavelength", "1.064 um", 1064.0),  # any unit of the dimension
                ("wavelength", "980", 980.0),  # a plain number is in the parameter's unit
                ("auto_range", "on", True),
                ("speed", "FAST", "fast"),  # choices in any letter case
                ("label", "run 7 — cold", "run 7 — cold"),
            ]:
                await run_guest(engine, guest(SET_TEXT, parameter, text))
                assert dev.values[parameter] == pytest.approx(held)

            # Text reads say the unit of a number, so what is read can be set back.
            for parameter, text in [
                ("wavelength", "980 nm"),
                ("averages", "10"),
                ("auto_range", "true"),
                ("speed", "fast"),
                ("serial", "SN-42"),
            ]:
                results, log = await run_guest(engine, guest(GET_TEXT, parameter))
                assert (results["rc"], log[0]) == (len(text.encode()), text)

    trio.run(main)


def test_text_output_returns_the_total_length_and_fills_what_fits() -> None:
    short = f"(call $param_get_text {{h}} {{name}} (i32.const {BUF}) (i32.const 3))"

    async def main() -> None:
        async with script_engine({"dev": Tunable()}) as engine:
            source = guest(short, "serial").replace(  # log only the 3 bytes that fit
                f"(i32.const {BUF}) (local.get $rc)", f"(i32.const {BUF}) (i32.const 3)"
            )
            results, log = await run_guest(engine, source)
            assert results["rc"] == len("SN-42")
            assert log[0] == "SN-"

    trio.run(main)


@pytest.mark.parametrize(
    ("call", "parameter", "value", "errno", "message"),
    [
        (GET_F64, "colour", "", Errno.E_NOTFOUND, r"no parameter 'colour' \(its parameters: wav"),
        (SET_TEXT, "colour", "red", Errno.E_NOTFOUND, "dev has no parameter 'colour'"),
        (set_f64(5000.0), "wavelength", "", Errno.E_INVAL, r"5000 nm is outside \[400, 1800\] nm"),
        (SET_TEXT, "wavelength", "5 s", Errno.E_INVAL, "'5 s' is a time, not a length"),
        (SET_TEXT, "speed", "ludicrous", Errno.E_INVAL, "'ludicrous' is not one of: slow, fast"),
        (set_f64(2.5), "averages", "", Errno.E_INVAL, "expected a whole number"),
        (set_f64(float("nan")), "auto_range", "", Errno.E_INVAL, "give 1 .on. or 0 .off."),
        (SET_TEXT, "serial", "SN-1", Errno.E_INVAL, "serial is read-only"),
        (GET_F64, "speed", "", Errno.E_KIND, "speed is a choice parameter.*param_get_text"),
        (set_f64(1.0), "label", "", Errno.E_KIND, "label is a text parameter.*param_set_text"),
    ],
)
def test_refusals_have_a_code_and_say_why(
    call: str, parameter: str, value: str, errno: Errno, message: str
) -> None:
    async def main() -> None:
        dev = Tunable()
        async with script_engine({"dev": dev}) as engine:
            await expect_error(engine, guest(call, parameter, value), errno, message)
            assert dev.sets == []  # a refused set never reaches the instrument

    trio.run(main)


def test_parameters_need_the_configurable_grant() -> None:
    async def main() -> None:
        async with script_engine({"dev": Tunable()}) as engine:
            source = guest(GET_F64, "wavelength")
            await engine.store.upload("params", source)
            with pytest.raises(ScriptFailed, match="--grant dev:Configurable") as failed:
                await engine.start("params", grants=Grants.parse(["dev:Readable"])).wait()
            assert failed.value.code == "denied"
            for grants in (["dev"], ["dev:Configurable"], ["*"]):
                results, _ = await run_guest(engine, source, Grants.parse(grants))
                assert results["value"] == 633.0

    trio.run(main)


def test_an_instrument_without_parameters_is_e_kind() -> None:
    class Plain:
        async def read(self) -> None: ...

    async def main() -> None:
        async with script_engine({"dev": Plain()}) as engine:
            await engine.store.upload("params", guest(GET_F64, "wavelength"))
            with pytest.raises(ScriptFailed, match="dev is not Configurable") as failed:
                await engine.start("params", grants=Grants.everything()).wait()
            assert failed.value.code == "kind"

    trio.run(main)


# --- end to end: the real Supervisor, a simulated power meter, the daemon's ParameterLog


SPECS = [
    InstrumentSpec("stage", "sim.stage", {"velocity": 500.0, "settle_time": 0.001}),
    InstrumentSpec("meter", "sim.power_meter", {"stage": "stage", "integration_time": 0.0005}),
]
TUNE_GRANTS = Grants.parse(["meter:Configurable,Readable"])


@asynccontextmanager
async def daemon_engine() -> AsyncIterator[tuple[ScriptEngine, Supervisor, list[dict[str, Any]]]]:
    """A script engine wired as the daemon wires it, and the rows of meter/parameters."""
    supervisor = Supervisor(SPECS)
    hub = StreamHub()
    log = ParameterLog(supervisor, hub)
    rows: list[dict[str, Any]] = []
    hub.stream("meter/parameters").add_sink(lambda seq, batch: rows.extend(batch.to_pylist()))
    engine = ScriptEngine(ScriptStore(), supervisor_resolver(supervisor), parameter_log=log)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await nursery.start(engine.run)
        await engine.store.upload("wavelength", build.build(EXAMPLE).read_bytes())
        yield engine, supervisor, rows
        nursery.cancel_scope.cancel()


EXAMPLE = EXAMPLES / "c" / "wavelength.c"


def test_a_script_sets_a_parameter_of_a_simulated_meter_and_the_set_is_recorded() -> None:
    async def main() -> None:
        async with daemon_engine() as (engine, supervisor, rows):
            meter = supervisor.get("meter")
            before = await meter.call("get_parameter", "wavelength")
            run = engine.start("wavelength", grants=TUNE_GRANTS, args={"wavelength": "1.31 um"})
            results = await run.wait()
            assert results["wavelength"] == pytest.approx(1310)
            assert results["restored"] == before  # and it put the meter back
            assert await meter.call("get_parameter", "wavelength") == pytest.approx(before)

            by = f"script wavelength run {run.id}"
            assert [(r["parameter"], r["number"], r["unit"], r["by"]) for r in rows] == [
                ("wavelength", pytest.approx(1310), "nm", by),
                ("wavelength", pytest.approx(before), "nm", by),
            ]
            assert "1310 nm" in [line.text for line in run.log]

    trio.run(main)


def test_without_the_grant_or_out_of_range_nothing_is_set() -> None:
    async def main() -> None:
        async with daemon_engine() as (engine, supervisor, rows):
            meter = supervisor.get("meter")
            before = await meter.call("get_parameter", "wavelength")

            run = engine.start("wavelength", grants=Grants.parse(["meter:Readable"]))
            with pytest.raises(ScriptFailed, match="--grant meter:Configurable") as failed:
                await run.wait()
            assert failed.value.code == "denied"

            for wanted, reason in [("1 m", "is outside"), ("5 s", "is a time, not a length")]:
                run = engine.start("wavelength", grants=TUNE_GRANTS, args={"wavelength": wanted})
                with pytest.raises(ScriptFailed, match=reason) as failed:
                    await run.wait()
                assert failed.value.code == "inval"
                assert run.status == Errno.E_INVAL

            assert rows == []
            assert await meter.call("get_parameter", "wavelength") == before

    trio.run(main)
