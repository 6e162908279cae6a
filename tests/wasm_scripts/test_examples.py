"""Every example, in every language, built with its real toolchain and run on the sim lab."""

import shutil
from pathlib import Path

import pytest
import trio

from labd.scripting import Grants, RunLimits, ScriptFailed
from tests.labd.scripting.simlab import (
    PEAK_MM,
    RASTER_GRANTS,
    SCAN_GRANTS,
    SWEEP_GRANTS,
    script_engine,
    sim_lab,
)
from wasm_scripts import build

SCANS = [p for p in build.examples() if p.stem == "scan"]
SWEEPS = [p for p in build.examples() if p.stem == "sweep"]
WAVELENGTHS = [p for p in build.examples() if p.stem == "wavelength"]
RASTERS = [p for p in build.examples() if p.stem == "raster"]


def test_there_is_a_scan_in_each_language() -> None:
    assert {p.suffix for p in SCANS} == {".wat", ".c", ".rs", ".zig", ".go", ".ts"}
    assert {p.suffix for p in SWEEPS} >= {".c", ".rs", ".zig", ".go", ".ts"}
    assert {p.suffix for p in WAVELENGTHS} >= {".c", ".rs", ".zig", ".go", ".ts"}


@pytest.mark.parametrize("source", SCANS, ids=lambda p: p.parent.name)
def test_scan_finds_the_peak(source: Path) -> None:
    binary = build.build(source).read_bytes()

    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("scan", binary)
            run = engine.start("scan", grants=SCAN_GRANTS)
            results = await run.wait()
            # 21 points from 2 to 4 mm: the grid point at the beam centre wins in every language.
            assert results["peak_position"] == pytest.approx(PEAK_MM, abs=0.01)
            assert results["peak_power"] > 9e-4
            assert results["spot_x_at_peak"] == pytest.approx(32, abs=1.5)
            # ...and the scan itself is a table, one row per point
            table = run.table.to_arrow()
            assert table.column_names == ["position", "power", "spot_x"]
            assert table.num_rows == 21
            positions = table.column("position").to_pylist()
            assert positions == pytest.approx([2 + 0.1 * i for i in range(21)], abs=0.01)
            peak = table.column("power").to_pylist().index(results["peak_power"])
            assert positions[peak] == results["peak_position"]

    trio.run(main)


@pytest.mark.parametrize("source", SWEEPS, ids=lambda p: p.parent.name)
def test_sweep_warms_the_sample(source: Path) -> None:
    binary = build.build(source).read_bytes()

    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("sweep", binary)
            run = engine.start(
                "sweep",
                grants=SWEEP_GRANTS,
                args={"volts_max": "10", "steps": "4", "settle_ms": "60"},
            )
            results = await run.wait()
            table = run.table.to_arrow()
            assert table.column_names == ["voltage", "temperature"]
            assert table.column("voltage").to_pylist() == pytest.approx([0, 10 / 3, 20 / 3, 10])
            assert results["temperature_rise"] > 0.5  # 10 W into 2 K/W, mostly settled
            # the script's cleanup switched the supply off
            assert (await lab["psu"].voltage_setpoint()) == 0
            assert not await lab["psu"].is_on()
            assert any(line.text.endswith("supply off") for line in run.log)

    trio.run(main)


@pytest.mark.parametrize("source", SWEEPS, ids=lambda p: p.parent.name)
def test_sweep_stopped_by_its_deadline_still_switches_the_supply_off(source: Path) -> None:
    # Its cleanup runs in the instance run() left mid-way (a Go runtime mid-sleep too).
    binary = build.build(source).read_bytes()

    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("sweep", binary)
            run = engine.start(
                "sweep",
                grants=SWEEP_GRANTS,
                args={"volts_max": "6", "settle_ms": "300"},
                limits=RunLimits(deadline_s=0.5),
            )
            with pytest.raises(ScriptFailed, match="deadline"):
                await run.wait()
            text = [line.text for line in run.log]
            assert "supply off" in text
            assert any(t.startswith("[labd] cleanup after deadline ran (") for t in text), text
            assert not await lab["psu"].is_on()

    trio.run(main)


@pytest.mark.parametrize("source", WAVELENGTHS, ids=lambda p: p.parent.name)
def test_wavelength_tunes_the_meter_and_puts_it_back(source: Path) -> None:
    # Every SDK's parameter calls, compiled and run: set from text, read as f64 and as
    # text, set as f64.
    binary = build.build(source).read_bytes()

    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            before = await lab["meter"].get_parameter("wavelength")
            await engine.store.upload("wavelength", binary)
            run = engine.start(
                "wavelength",
                grants=Grants.parse(["meter:Configurable,Readable"]),
                args={"wavelength": "1.55 um"},
            )
            results = await run.wait()
            assert results["wavelength"] == pytest.approx(1550)
            assert results["power"] > 0
            assert results["restored"] == before
            assert await lab["meter"].get_parameter("wavelength") == pytest.approx(before)
            assert any(line.text.endswith("1550 nm") for line in run.log)

    trio.run(main)


@pytest.mark.parametrize("source", RASTERS, ids=lambda p: p.parent.name)
def test_raster_is_a_table_with_both_axes(source: Path) -> None:
    binary = build.build(source).read_bytes()

    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("raster", binary)
            args = {"volts_max": "4", "volt_steps": "3", "steps": "5", "settle_ms": "1"}
            run = engine.start("raster", grants=RASTER_GRANTS, args=args)
            await run.wait()
            table = run.table.to_arrow()
            assert table.column_names == ["voltage", "position", "power"]
            assert table.num_rows == 3 * 5
            axes = zip(table["voltage"].to_pylist(), table["position"].to_pylist(), strict=True)
            grid = {(v, round(x, 3)) for v, x in axes}
            assert grid == {(v, x) for v in (0, 2, 4) for x in (2, 2.5, 3, 3.5, 4)}
            assert not await lab["psu"].is_on()  # its cleanup

    trio.run(main)


def test_build_writes_every_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cache stays the shared one: the other tests have compiled these already.
    monkeypatch.setattr(build, "BUILD", tmp_path)
    assert build.main(["--strict"]) == 0
    built = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*.wasm")}
    assert built == {f"{p.parent.name}/{p.stem}.wasm" for p in build.examples()}


def test_a_build_is_reused_until_its_source_or_sdk_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "BUILD", tmp_path / "build")
    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    sdk = tmp_path / "sdk"
    shutil.copytree(build.HERE / "sdk" / "c", sdk / "c")
    monkeypatch.setenv("LABD_SDK_DIR", str(sdk))
    source = tmp_path / "c" / "scan.c"
    source.parent.mkdir()
    shutil.copyfile(build.EXAMPLES / "c" / "scan.c", source)

    first = build.build_key(source)
    build.build(source)
    assert [p.stem for p in (tmp_path / "cache").glob("*.wasm")] == [first]
    assert build.build_key(source) == first
    source.write_text(source.read_text() + "\n// an edit\n")
    assert build.build_key(source) != first
    edited = build.build_key(source)
    (sdk / "c" / "labd.h").write_text((sdk / "c" / "labd.h").read_text() + "\n")
    assert build.build_key(source) not in (first, edited)
