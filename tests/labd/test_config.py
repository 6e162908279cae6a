"""Config errors are found before anything starts, with file, line, key and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from labd.config import default_config, load_config, parse_config
from labd.errors import ConfigError


def test_default_config_is_the_simulated_lab() -> None:
    config = default_config()
    assert {s.name: s.driver for s in config.instruments} == {
        "stage": "sim.stage",
        "meter": "sim.power_meter",
        "camera": "sim.camera",
        "thermo": "sim.thermometer",
        "psu": "sim.power_supply",
    }


def test_unknown_driver_names_file_line_and_known_drivers(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        '[instruments.stage]\ndriver = "sim.stage"\n\n[instruments.laser]\ndriver = "sim.lazer"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert f"{path}:5: instruments.laser.driver: unknown driver 'sim.lazer'" in message
    assert "sim.stage" in message  # the hint lists what exists


def test_unknown_parameter_lists_accepted_ones() -> None:
    text = '[instruments.stage]\ndriver = "sim.stage"\nspeed = 3\n'
    with pytest.raises(
        ConfigError, match=r":3: instruments.stage.speed: unknown parameter .*accepted: .*velocity"
    ):
        parse_config(text, source="lab.toml")


def test_bad_parameter_value_is_reported_by_the_driver() -> None:
    text = '[instruments.stage]\ndriver = "sim.stage"\nfail_after_calls = -1\n'
    with pytest.raises(ConfigError, match="rejected its parameters: fail_after_calls must be"):
        parse_config(text, source="lab.toml")


def test_duplicate_instrument_is_a_toml_error_with_its_line() -> None:
    text = '[instruments.stage]\ndriver = "sim.stage"\n[instruments.stage]\ndriver = "sim.stage"\n'
    with pytest.raises(ConfigError, match=r"^lab.toml:3:19: not valid TOML: Cannot declare"):
        parse_config(text, source="lab.toml")


def test_missing_driver_and_bad_daemon_keys() -> None:
    with pytest.raises(ConfigError, match="missing 'driver'"):
        parse_config("[instruments.stage]\nvelocity = 3\n")
    with pytest.raises(ConfigError, match="poll_hz: must be a number in Hz from 0 to 1000"):
        parse_config('[instruments.stage]\ndriver = "sim.stage"\npoll_hz = "fast"\n')
    with pytest.raises(ConfigError, match="no instruments configured"):
        parse_config("[daemon]\nretention_s = 10\n")
    with pytest.raises(ConfigError, match="unknown section"):
        parse_config('[instrument.stage]\ndriver = "sim.stage"\n')


def test_unreadable_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the lab config"):
        load_config("/nonexistent/lab.toml")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "devices").mkdir()
    path = tmp_path / "lab.toml"
    path.write_text(
        '[instruments.dmm]\ndriver = "keysight.34461a"\n'
        'resource = "USB0::0x2A8D::0x1301::MY57216238::INSTR"\n'
        'visa_library = "devices/dmm.yaml@sim"\n'
    )
    (spec,) = load_config(path).instruments
    assert spec.params["visa_library"] == f"{tmp_path / 'devices' / 'dmm.yaml'}@sim"


def test_example_mixed_lab_loads() -> None:
    config = load_config(Path(__file__).parents[2] / "docs" / "examples" / "mixed-lab.toml")
    dmm = next(s for s in config.instruments if s.name == "dmm")
    assert Path(dmm.params["visa_library"].removesuffix("@sim")).is_file()


def test_daemon_and_restart_values_are_checked_with_their_line() -> None:
    stage = '[instruments.stage]\ndriver = "sim.stage"\n'
    with pytest.raises(
        ConfigError, match=r"lab.toml:2: daemon.retention_s: must be a number in s > 0"
    ):
        parse_config('[daemon]\nretention_s = "long"\n' + stage, source="lab.toml")
    with pytest.raises(ConfigError, match=r":3: restart.max_retries: unknown key.*max_restarts"):
        parse_config("[restart]\nwindow_s = 60\nmax_retries = 3\n" + stage, source="lab.toml")
    with pytest.raises(ConfigError, match=r"restart\.window_s: must be a number in s > 0"):
        parse_config('[restart]\nwindow_s = "a while"\n' + stage)
    with pytest.raises(ConfigError, match=r"restart\.max_restarts: must be a whole number"):
        parse_config("[restart]\nmax_restarts = 2.5\n" + stage)
    assert parse_config("[restart]\nmax_restarts = 2\n" + stage).restart.max_restarts == 2


def test_a_call_timeout_of_zero_is_refused() -> None:
    with pytest.raises(ConfigError, match="call_timeout_s: must be a number in s > 0"):
        parse_config('[instruments.stage]\ndriver = "sim.stage"\ncall_timeout_s = 0\n')


def test_quantities_are_converted_to_the_parameters_unit() -> None:
    text = (
        '[daemon]\nretention_s = "2 min"\nring_memory_mb = "1 GiB"\n'
        '[instruments.camera]\ndriver = "sim.camera"\nexposure = "20 ms"\nframe_fps = "5 Hz"\n'
        'ambient = "293.15 K"\n'
    )
    config = parse_config(text)
    (camera,) = config.instruments
    assert (config.retention_s, config.ring_memory_bytes) == (120.0, 1 << 30)
    assert camera.params["exposure"] == pytest.approx(0.02)
    assert camera.params["ambient"] == pytest.approx(20.0)  # °C, the driver's unit
    assert camera.frame_fps == 5.0
    with pytest.raises(ConfigError, match=r":3: instruments.camera.exposure: '20 V' is a volt"):
        parse_config('[instruments.camera]\ndriver = "sim.camera"\nexposure = "20 V"\n')


def test_references_resolve_by_the_name_siblings_know_an_instrument_by() -> None:
    renamed = '[instruments.x]\ndriver = "sim.stage"\n'
    meter = '[instruments.meter]\ndriver = "sim.power_meter"\nstage = "x"\n'
    assert len(parse_config(renamed + meter).instruments) == 2
    aliased = '[instruments.x]\ndriver = "sim.stage"\nname = "y"\n'
    with pytest.raises(ConfigError, match=r"stage = 'x' names no sim.stage instrument.*: y$"):
        parse_config(aliased + meter)


def test_every_problem_is_reported_in_file_order() -> None:
    text = (
        '[instruments.stage]\ndriver = "sim.stage"\npoll_hz = -1\n'
        "[daemon]\nretention_s = 0\n"
        "[restart]\nwindow_s = nan\n"
    )
    with pytest.raises(ConfigError) as e:
        parse_config(text, source="lab.toml")
    assert [line.split(": ")[:2] for line in str(e.value).splitlines()] == [
        ["lab.toml:3", "instruments.stage.poll_hz"],
        ["lab.toml:5", "daemon.retention_s"],
        ["lab.toml:7", "restart.window_s"],
    ]


def test_daemon_group_and_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        '[daemon]\ngroup = "root"\ndata_dir = "data"\n[instruments.stage]\ndriver = "sim.stage"\n'
    )
    config = load_config(path)
    assert (config.group, config.data_dir) == ("root", tmp_path / "data")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"data_dir: .*file exists and is not a directory"):
        parse_config(
            f'[daemon]\ndata_dir = "{tmp_path / "file"}"\n[instruments.s]\ndriver = "sim.stage"\n'
        )
