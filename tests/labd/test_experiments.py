"""Experiments are typed by capability: mypy rejects an instrument that lacks one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = """
from drivers.sim.power_supply import SimPowerSupply
from drivers.sim.stage import SimStage
from drivers.sim.thermometer import SimThermometer
from labd.experiments import temperature_sweep

async def good() -> None:
    await temperature_sweep(SimThermometer(), SimPowerSupply(), [1.0, 2.0])

async def bad() -> None:
    await temperature_sweep(SimStage(), SimPowerSupply(), [1.0, 2.0])
"""


def run_mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "experiment.py"
    path.write_text(textwrap.dedent(source))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--disable-error-code=type-abstract",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.timeout(300)
def test_mypy_rejects_an_instrument_lacking_a_capability(tmp_path: Path) -> None:
    result = run_mypy(tmp_path, SNIPPET)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # Exactly one error, on the line of bad(): a stage is not a TemperatureSensor.
    assert len(errors) == 1, result.stdout
    assert "experiment.py:11:" in errors[0]
    assert '"SimStage"' in errors[0] and '"TemperatureSensor"' in errors[0]
