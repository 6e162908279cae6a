"""Parameters through a real ``labd serve``: list, get, set with units, restrictions per
parameter (also against concurrent sets), the record of every set in replay, watching
sets, and ``labd get``/``labd set`` (docs/parameters.md)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from capabilities import InvalidRequest, OutOfRange, PermissionDenied
from labd import aio
from labd.client import ParameterLimit, Restriction, connect, connect_blocking, redeem_blocking
from tests.labd.rpc.conftest import REPO, LabdProcess, start_labd


@pytest.fixture(scope="module")
def labd_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(tmp_path_factory.mktemp("parameters"))
    yield daemon
    daemon.stop()


def test_a_parameter_says_what_it_is_and_takes_values_as_people_write_them(
    labd_proc: LabdProcess,
) -> None:
    with connect_blocking(labd_proc.address) as lab:
        meter = lab.instrument("meter")
        assert "Configurable" in meter.capabilities()
        wavelength = meter.parameters.describe("wavelength")
        assert (wavelength.kind, wavelength.unit) == ("float", "nm")
        assert wavelength.writable and wavelength.readable and wavelength.description

        assert meter.parameters["wavelength"].set(1.064, "um") == pytest.approx(1064)
        assert meter.parameters.set("wavelength", "532 nm") == pytest.approx(532)
        assert meter.parameters.get("wavelength") == pytest.approx(532)

        with pytest.raises(InvalidRequest, match="is a voltage, not a length"):
            meter.parameters.set("wavelength", "3 V")
        with pytest.raises(OutOfRange, match="outside"):
            meter.parameters.set("wavelength", 1e9)
        with pytest.raises(InvalidRequest, match=r"has no parameter 'nope'.*wavelength"):
            meter.parameters.get("nope")
        assert meter.parameters.get("wavelength") == pytest.approx(532)  # nothing changed


def test_a_share_limited_on_a_parameter_holds_against_every_set(labd_proc: LabdProcess) -> None:
    with connect_blocking(labd_proc.address) as lab:
        meter = lab.instrument("meter")
        meter.parameters.set("wavelength", 700)
        limits = {"wavelength": ParameterLimit(range=(600.0, 900.0))}
        others = [p for p in meter.parameters.list() if p.writable and p.name != "wavelength"]
        frozen = others[0].name
        limits[frozen] = ParameterLimit(read_only=True)
        token, _ = meter.share(Restriction(parameters=limits))

        with pytest.raises(
            InvalidRequest, match=r"cannot limit parameter 'wavelenght'.*wavelength"
        ):
            meter.share(Restriction(parameters={"wavelenght": ParameterLimit(read_only=True)}))

    with redeem_blocking(token, labd_proc.address) as shared:
        seen = {p.name: p for p in shared.parameters.list()}
        assert (seen["wavelength"].low, seen["wavelength"].high) == (600.0, 900.0)
        assert not seen[frozen].writable
        with pytest.raises(OutOfRange, match=r"outside \[600, 900\].*restricted"):
            shared.parameters.set("wavelength", 1000)
        with pytest.raises(OutOfRange, match="restricted"):
            shared.parameters.set("wavelength", "1.2 um")  # checked after unit conversion
        with pytest.raises(PermissionDenied, match=f"may read {frozen}, not set it"):
            shared.parameters.set(frozen, shared.parameters.get(frozen))
        assert shared.parameters.set("wavelength", 850) == pytest.approx(850)

    async def race() -> list[object]:
        async with connect(labd_proc.address, token=labd_proc.token) as lab:
            restricted = await lab.instrument("meter").restrict(Restriction(parameters=limits))
            outcomes: list[object] = []

            async def one(value: float) -> None:
                try:
                    outcomes.append(await restricted.parameters.set("wavelength", value))
                except OutOfRange as e:
                    outcomes.append(e)

            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(one, 500.0 + 10 * i)  # 500..890 nm
            outcomes.append(await restricted.parameters.get("wavelength"))
            return outcomes

    outcomes = aio.run(race)
    refused = [o for o in outcomes if isinstance(o, OutOfRange)]
    assert len(refused) == 10  # 500..590 nm
    assert all(600 <= o <= 900 for o in outcomes if isinstance(o, float))


def test_every_set_is_recorded_on_the_instruments_stream_and_watched(
    labd_proc: LabdProcess,
) -> None:
    with connect_blocking(labd_proc.address) as lab:
        meter = lab.instrument("meter")
        assert "meter/parameters" in meter.info().streams
        with meter.parameters.watch() as changes:
            before = time.time()
            meter.parameters.set("wavelength", 633)
            change = next(iter(changes))
        assert (change.instrument, change.parameter, change.by) == ("meter", "wavelength", "rpc")
        assert change.value == pytest.approx(633) and change.unit == "nm"

        table = lab.replay("meter/parameters", before - 1, time.time() + 1)
        rows = table.to_pylist()
        assert any(r["parameter"] == "wavelength" and r["number"] == 633 for r in rows), rows
        assert {"timestamp", "parameter", "channel", "value", "unit", "by"} <= set(
            table.schema.names
        )


def labd_cli(daemon: LabdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", *args, "--connect", daemon.address],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


def test_the_cli_lists_gets_and_sets_parameters(labd_proc: LabdProcess) -> None:
    done = labd_cli(labd_proc, "set", "meter", "wavelength", "1.31um")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1310 nm"
    got = labd_cli(labd_proc, "get", "meter", "wavelength")
    assert got.stdout.strip() == "1310 nm"
    table = labd_cli(labd_proc, "get", "meter")
    assert table.returncode == 0 and "wavelength" in table.stdout and "[" in table.stdout

    wrong = labd_cli(labd_proc, "set", "meter", "wavelength", "2", "V")
    assert wrong.returncode != 0
    assert wrong.stderr.count("\n") == 1 and "not a length" in wrong.stderr


def test_a_read_only_share_reads_parameters_and_sets_none(labd_proc: LabdProcess) -> None:
    with connect_blocking(labd_proc.address) as lab:
        token, _ = lab.instrument("camera").share(Restriction(read_only=True))
    with redeem_blocking(token, labd_proc.address) as camera:
        parameters = camera.parameters.list()
        assert parameters and not any(p.writable for p in parameters)
        first = parameters[0]
        value = camera.parameters.get(first.name)
        with pytest.raises(PermissionDenied, match="read-only"):
            camera.parameters.set(first.name, value)


def test_a_setting_changed_by_a_capability_call_is_recorded_and_watched_too(
    labd_proc: LabdProcess,
) -> None:
    """``set_wavelength`` is the ``wavelength`` parameter set another way: the stream and
    every watcher hear of it, by the call's name."""
    from capabilities import WavelengthTunable

    with connect_blocking(labd_proc.address) as lab:
        meter = lab.instrument("meter")
        with meter.parameters.watch() as changes:
            before = time.time()
            meter.get(WavelengthTunable).set_wavelength(980.0)
            change = next(iter(changes))
        assert (change.parameter, change.by) == ("wavelength", "set_wavelength")
        assert change.value == pytest.approx(980)
        rows = lab.replay("meter/parameters", before - 1, time.time() + 1).to_pylist()
        assert [r["by"] for r in rows if r["parameter"] == "wavelength"] == ["set_wavelength"]


def test_each_instrument_s_settings_are_recorded_when_it_becomes_ready(
    labd_proc: LabdProcess,
) -> None:
    with connect_blocking(labd_proc.address) as lab:
        rows = lab.replay("camera/parameters", 0, time.time()).to_pylist()
        opened = {r["parameter"] for r in rows if r["by"] == "open"}
        assert {p.name for p in lab.instrument("camera").parameters.list()} <= opened


def test_a_set_that_changes_another_parameter_records_that_one_too(tmp_path: Path) -> None:
    """Lowering a supply's over-voltage protection below its live voltage trips it: the
    trip is on the stream too, by the set that caused it."""
    from capabilities import Switchable, VoltageSource

    daemon = start_labd(tmp_path, config='[instruments.psu]\ndriver = "sim.power_supply"\n')
    try:
        with connect_blocking(daemon.address) as lab:
            psu = lab.instrument("psu")
            psu.get(VoltageSource).set_voltage(5.0)
            psu.get(Switchable).set_on(True)
            assert psu.parameters.get("protection_tripped") is False
            with psu.parameters.watch() as changes:
                psu.parameters.set("over_voltage_protection", "4 V")
                seen = {c.parameter: c for c in (next(iter(changes)) for _ in range(2))}
            assert seen["over_voltage_protection"].by == "rpc"
            assert seen["protection_tripped"].value is True
            # Found by the re-read after the set -- or by the one after set_on, when that
            # re-read was still under way as the set tripped the supply.
            assert seen["protection_tripped"].by in ("set over_voltage_protection", "set_on")
            assert psu.get(Switchable).is_on() is False
    finally:
        daemon.stop()
