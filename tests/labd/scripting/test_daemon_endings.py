"""Safe endings and scan tables on a real ``labd serve``, driven by ``labd run`` and the
clients; and the lab config's check of ``[instruments.X.safe_state]``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from capabilities import Switchable, VoltageSource
from labd.client import connect_blocking
from labd.config import parse_config
from labd.errors import ConfigError
from tests.labd.rpc.conftest import REPO, LabdProcess, start_labd

RASTER = REPO / "wasm_scripts" / "examples" / "c" / "raster.c"
SCAN = REPO / "wasm_scripts" / "examples" / "wat" / "scan.wat"

LAB = """
[instruments.stage]
driver = "sim.stage"
velocity = 500.0
acceleration = 50000.0
settle_time = 0.001

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
integration_time = "0.5 ms"

[instruments.camera]
driver = "sim.camera"
stage = "stage"
sensor_width = 64
sensor_height = 48

[instruments.camera.safe_state]   # never opened by the raster: left alone
gain = 4

[instruments.psu]
driver = "sim.power_supply"

[instruments.psu.safe_state]
output = false
voltage = "0 V"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    process = start_labd(tmp_path_factory.mktemp("labd"), config=LAB)
    yield process
    process.stop()


def labd_run(daemon: LabdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", "run", *args, "--connect", daemon.address],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip


def test_a_raster_killed_by_its_deadline_cleans_up_and_leaves_the_supply_safe(
    daemon: LabdProcess,
) -> None:
    # Output on, 0 V and a line of 3 points, then 6 V: the deadline stops it while the
    # sample settles at 6 V, with the output on.
    done = labd_run(
        daemon, str(RASTER), "--grant", "psu", "--grant", "stage", "--grant", "meter",
        "--grant", "camera", "--deadline", "1.5", "--arg", "volt_steps=2", "--arg", "steps=3",
        "--arg", "settle_ms=1000", "--arg", "volts_max=6",
    )  # fmt: skip
    out = " ".join(done.stdout.split())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed: deadline:" in done.stderr
    # the script's cleanup ran (its own line and labd's), then the safe state
    assert "raster cleanup: supply output off, stage parked at the start" in out
    assert "[labd] cleanup after deadline ran (" in out
    assert "[labd] safe state of psu applied: output = false, voltage = 0 V" in out
    assert "camera" not in out.split("[labd] cleanup after")[1]  # never opened, untouched
    # the rows emitted before the deadline are printed: the 0 V line of the raster
    assert "table of script 'raster' v1" in out
    with connect_blocking(daemon.address) as lab:
        psu = lab.instrument("psu")
        assert psu.get(Switchable).is_on() is False
        assert psu.get(VoltageSource).voltage_setpoint() == 0  # the safe state, not the cleanup
        assert lab.instrument("camera").parameters.get("gain") == 1
    log = daemon.log.read_text()
    assert "run 1: cleanup after deadline ran" in log
    assert "run 1: safe state of psu applied" in log


def test_a_successful_run_applies_no_safe_state(daemon: LabdProcess, tmp_path: Path) -> None:
    on = tmp_path / "on.wat"
    on.write_text("""(module
      (import "labd_v1" "cap_get" (func $cap_get (param i32 i32 i32) (result i32)))
      (import "labd_v1" "supply_set_voltage" (func $volts (param i32 f64) (result i32)))
      (import "labd_v1" "switch_set" (func $switch (param i32 i32) (result i32)))
      (memory (export "memory") 1) (data (i32.const 0) "psu")
      (func (export "run") (result i32)
        (drop (call $volts (call $cap_get (i32.const 0) (i32.const 3) (i32.const 7)) (f64.const 6)))
        (call $switch (call $cap_get (i32.const 0) (i32.const 3) (i32.const 8)) (i32.const 1))))""")
    done = labd_run(daemon, str(on), "--grant", "psu")
    assert done.returncode == 0, done.stderr
    assert "safe state" not in done.stdout
    with connect_blocking(daemon.address) as lab:
        psu = lab.instrument("psu")
        assert psu.get(Switchable).is_on() is True
        assert psu.get(VoltageSource).voltage_setpoint() == 6
        psu.get(Switchable).set_on(False)


def test_a_scan_is_a_table_for_the_clients_and_labd_run(daemon: LabdProcess) -> None:
    done = labd_run(
        daemon, str(SCAN), "--grant", "stage", "--grant", "meter", "--grant", "camera",
        "--arg", "steps=5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "position" in line and "spot_x" in line)
    assert lines.index(next(line for line in lines if "peak_position" in line)) < header
    rows = [line for line in lines[header:] if line.strip().startswith("│ ") and "│" in line]
    assert len(rows) == 5  # one per point
    with connect_blocking(daemon.address) as lab:
        scripts = lab.scripts()
        run = scripts.run("scan", grants=["*"], args={"steps": 4})
        run.wait()
        frame = run.table().to_pandas()
        assert list(frame.columns) == ["position", "power", "spot_x"]
        expected = [2, 2 + 2 / 3, 2 + 4 / 3, 4]
        assert frame["position"].tolist() == pytest.approx(expected, abs=0.01)
        # the same rows are on the results stream (rings, files, replay) in long format
        info = run.info()
        assert info.ended_at is not None and info.started_at is not None
        results = lab.replay("scripts/results", info.started_at, info.ended_at + 1).to_pandas()
        mine = results[(results["run"] == info.id) & results["row"].notna()]
        pivot = mine.pivot(index="row", columns="name", values="value")
        assert pivot["position"].tolist() == frame["position"].tolist()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("outptu = false", "safe_state.outptu: this instrument has no parameter 'outptu'"),
        ('voltage = "3 A"', "safe_state.voltage: voltage: '3 A' is a current"),
        ('output = "maybe"', "safe_state.output: output: expected true or false"),
        ("position = 0", "safe_state.position: position needs an instrument that is Movable"),
        ("protection_tripped = false", "protection_tripped is read-only"),
    ],
)
def test_a_bad_safe_state_is_one_line_naming_file_and_key(table: str, message: str) -> None:
    text = (
        f'[instruments.psu]\ndriver = "sim.power_supply"\n[instruments.psu.safe_state]\n{table}\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="lab.toml")
    (line,) = str(caught.value).splitlines()
    assert line.startswith("lab.toml:4: instruments.psu.safe_state.")
    assert message in line
