"""Every parameter of every driver, through the real RPC, from each kind of client.

The mixed lab (docs/examples/mixed-lab.toml: simulators, VISA drivers on pyvisa-sim and
serial drivers on their simulators' ptys) is served by a real ``labd serve``. For every
instrument and channel that has parameters, each one is listed, read, and set to another
value it accepts -- by the blocking client, by ``labd set`` and by a WebAssembly script --
and then read back the way the daemon reports it (docs/parameters.md).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from capabilities import InvalidRequest, Parameter, ParameterValue
from labd.client import BlockingLab, connect_blocking
from tests.drivers.test_mixed_lab_served import ServedLab
from tests.labd.scripting.wat import module

REPO = Path(__file__).resolve().parents[2]

#: Set parameter ``parameter`` of ``instrument`` to the text ``value`` (args of the run),
#: read it back as text and publish its length as the result ``held``.
SET_PARAMETER = module(
    "arg_str", "cap_get", "param_set_text", "param_get_text", "log", "result_f64",
    extra='(data (i32.const 2048) "instrumentparametervalueheld")',
    body="""
    (local $il i32) (local $pl i32) (local $vl i32) (local $h i32) (local $n i32)
    (local.set $il (call $arg_str (i32.const 2048) (i32.const 10) (i32.const 0) (i32.const 256)))
    (if (i32.lt_s (local.get $il) (i32.const 0)) (then (return (local.get $il))))
    (local.set $pl (call $arg_str (i32.const 2058) (i32.const 9) (i32.const 256) (i32.const 256)))
    (if (i32.lt_s (local.get $pl) (i32.const 0)) (then (return (local.get $pl))))
    (local.set $vl (call $arg_str (i32.const 2067) (i32.const 5) (i32.const 512) (i32.const 256)))
    (if (i32.lt_s (local.get $vl) (i32.const 0)) (then (return (local.get $vl))))
    (local.set $h (call $cap_get (i32.const 0) (local.get $il) (i32.const 9)))
    (if (i32.lt_s (local.get $h) (i32.const 0)) (then (return (local.get $h))))
    (local.set $n (call $param_set_text (local.get $h) (i32.const 256) (local.get $pl)
                                        (i32.const 512) (local.get $vl)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
    (local.set $n (call $param_get_text (local.get $h) (i32.const 256) (local.get $pl)
                                        (i32.const 1024) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
    (drop (call $log (i32.const 1) (i32.const 1024) (local.get $n)))
    (drop (call $result_f64 (i32.const 2072) (i32.const 4) (f64.convert_i32_s (local.get $n))))
    (i32.const 0)""",
)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedLab]:
    lab = ServedLab(tmp_path_factory.mktemp("everywhere"))
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def configurable(lab: BlockingLab) -> list[str]:
    return [info.name for info in lab.instruments() if "Configurable" in info.capabilities]


def another_value(parameter: Parameter, now: ParameterValue | None) -> ParameterValue:
    """A value ``parameter`` accepts, different from ``now`` where it can be."""
    if parameter.kind == "choice":
        return next((c for c in parameter.choices if c != now), parameter.choices[0])
    if parameter.kind == "bool":
        return not now
    if parameter.kind == "text":
        return str(now or "labd")
    low, high = parameter.low, parameter.high
    if low is not None and high is not None:
        middle = (low + high) / 2
        value = round(middle) if parameter.kind == "int" else middle
        if value == now:
            value = low
        return value
    assert now is not None, f"{parameter.name}: unbounded and write-only; nothing to try"
    return now


def same(parameter: Parameter, got: ParameterValue, wanted: ParameterValue) -> bool:
    if parameter.kind in ("float", "int"):
        return abs(float(got) - float(wanted)) <= 1e-6 * max(1.0, abs(float(wanted)))
    if parameter.kind == "choice":
        return str(got).lower() == str(wanted).lower()
    return got == wanted


def test_every_driver_lists_its_parameters_with_what_they_accept(served: ServedLab) -> None:
    with connect_blocking(str(served.socket)) as lab:
        names = configurable(lab)
        for family in ("dmm", "psu/ch1", "cryo/A", "rotator", "linear", "power", "camera"):
            assert family in names, f"{family} has no parameters; all: {names}"
        read = 0
        for name in names:
            for parameter in lab.instrument(name).parameters.list():
                assert parameter.description, f"{name}.{parameter.name} has no description"
                if parameter.kind == "choice":
                    assert parameter.choices
                if parameter.readable:
                    value = readable_now(lab, name, parameter)
                    if value is not None:
                        parameter.check(value)
                        read += 1
        assert read >= 20


def readable_now(lab: BlockingLab, name: str, parameter: Parameter) -> ParameterValue | None:
    """Its value, or None where the instrument says in one line why it has none now (a
    Lake Shore input that no heater loop controls has no set point)."""
    try:
        return lab.instrument(name).parameters.get(parameter.name)
    except InvalidRequest as e:
        assert "\n" not in str(e) and name in ("cryo/C", "cryo/D"), (name, str(e))
        return None


def test_the_blocking_client_sets_every_writable_parameter(served: ServedLab) -> None:
    with connect_blocking(str(served.socket)) as lab:
        tried = 0
        for name in configurable(lab):
            parameters = lab.instrument(name).parameters
            for parameter in parameters.list():
                if not parameter.writable:
                    continue
                before = readable_now(lab, name, parameter) if parameter.readable else None
                if parameter.readable and before is None:
                    continue
                wanted = another_value(parameter, before)
                held = parameters.set(parameter.name, wanted)
                assert same(parameter, held, wanted), f"{name}.{parameter.name}: {held!r}"
                if parameter.readable:
                    assert same(parameter, parameters.get(parameter.name), wanted)
                    parameters.set(parameter.name, before)  # leave the lab as it was
                tried += 1
        assert tried >= 15


def labd_cli(served: ServedLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", *args, "--connect", str(served.socket)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


def first_settable(lab: BlockingLab, name: str) -> Parameter | None:
    return next(
        (
            p
            for p in lab.instrument(name).parameters.list()
            if p.writable and p.readable and readable_now(lab, name, p) is not None
        ),
        None,
    )


def test_the_cli_lists_and_sets_a_parameter_of_every_instrument(served: ServedLab) -> None:
    with connect_blocking(str(served.socket)) as lab:
        for name in configurable(lab):
            listing = labd_cli(served, "get", name)
            assert listing.returncode == 0, listing.stderr
            for parameter in lab.instrument(name).parameters.list():
                assert parameter.name in listing.stdout, (name, parameter.name)
            parameter = first_settable(lab, name)
            if parameter is None:
                continue
            before = lab.instrument(name).parameters.get(parameter.name)
            wanted = another_value(parameter, before)
            # As typed at a shell: "160K" with its unit glued on; a choice in any case.
            if parameter.kind in ("float", "int"):
                text = f"{wanted}{parameter.unit}"
            else:
                text = str(wanted).lower() if parameter.kind == "choice" else str(wanted)
            done = labd_cli(served, "set", name, parameter.name, text)
            assert done.returncode == 0, (name, parameter.name, done.stderr)
            shown = labd_cli(served, "get", name, parameter.name).stdout.strip()
            assert shown == parameter.show(lab.instrument(name).parameters.get(parameter.name))
            assert same(parameter, lab.instrument(name).parameters.get(parameter.name), wanted)
            lab.instrument(name).parameters.set(parameter.name, before)


def test_a_script_sets_a_parameter_of_every_instrument(served: ServedLab) -> None:
    with connect_blocking(str(served.socket)) as lab:
        scripts = lab.scripts()
        scripts.upload("set-parameter", SET_PARAMETER)
        for name in configurable(lab):
            parameter = first_settable(lab, name)
            if parameter is None:
                continue
            before = lab.instrument(name).parameters.get(parameter.name)
            wanted = another_value(parameter, before)
            text = parameter.show(wanted)  # "80 K": with its unit, as a person writes it
            run = scripts.run(
                "set-parameter",
                grants=[f"{name}:Configurable"],
                args={"instrument": name, "parameter": parameter.name, "value": text},
            )
            results = run.wait(timeout=30)
            assert results["held"] > 0, (name, parameter.name)
            assert same(parameter, lab.instrument(name).parameters.get(parameter.name), wanted)
            lab.instrument(name).parameters.set(parameter.name, before)

        # Without the grant the same script is refused, and nothing changes.
        name = configurable(lab)[0]
        parameter = first_settable(lab, name)
        assert parameter is not None
        before = lab.instrument(name).parameters.get(parameter.name)
        run = scripts.run(
            "set-parameter",
            grants=[],
            args={"instrument": name, "parameter": parameter.name, "value": "1"},
        )
        with pytest.raises(Exception, match="denied"):
            run.wait(timeout=30)
        assert lab.instrument(name).parameters.get(parameter.name) == before
