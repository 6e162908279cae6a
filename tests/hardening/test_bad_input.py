"""Bad input in a lab config or on the command line: one clear line, exit status 2, no
traceback, and a daemon that does not start (docs/config.md, "Errors").

Every case runs the real ``labd`` in a subprocess, as a person would: ``labd serve --config
bad.toml`` for the config cases, the client subcommands for the command-line ones.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.conftest import LabdProcess, start_labd
from tests.labd.rpc.conftest import REPO

SCAN = REPO / "wasm_scripts" / "examples" / "wat" / "scan.wat"
STAGE = '[instruments.stage]\ndriver = "sim.stage"\n'


def labd(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LABD_DEBUG", "LABD_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "labd", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd,
        env=dict(env, PYTHONPATH=str(REPO)),
    )  # fmt: skip


def error_lines(result: subprocess.CompletedProcess[str], status: int = 2) -> list[str]:
    """The error lines of a refused command: no traceback, the expected exit status."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, (result.returncode, result.stderr)
    return result.stderr.strip().splitlines()


def one_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    lines = error_lines(result, status)
    assert len(lines) == 1, result.stderr
    return lines[0]


def serve(tmp_path: Path, config: str | bytes) -> subprocess.CompletedProcess[str]:
    """``labd serve`` with ``config`` as lab.toml; it must refuse to start."""
    path = tmp_path / "lab.toml"
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        path.write_text(config)
    sock = tmp_path / "run" / "labd.sock"
    result = labd("serve", "--config", str(path), "--socket", str(sock))
    assert not sock.exists(), "the daemon started on a bad config"
    return result


# -- config files ------------------------------------------------------------------------

CONFIG_CASES = {
    # name: (config, line, key, what the message must say)
    "poll_hz = inf": (STAGE + "poll_hz = inf\n", 3, "instruments.stage.poll_hz", "from 0 to 1000"),
    "poll_hz = nan": (STAGE + "poll_hz = nan\n", 3, "instruments.stage.poll_hz", "got nan"),
    "poll_hz = 1e9": (STAGE + "poll_hz = 1e9\n", 3, "instruments.stage.poll_hz", "1000"),
    "poll_hz = -1": (STAGE + "poll_hz = -1\n", 3, "instruments.stage.poll_hz", "got -1"),
    "frame_fps too high": (
        '[instruments.camera]\ndriver = "sim.camera"\nframe_fps = 1e6\n', 3,
        "instruments.camera.frame_fps", "from 0 to 100",
    ),
    "data_dir = 5": ("[daemon]\ndata_dir = 5\n" + STAGE, 2, "daemon.data_dir", "got 5"),
    "retention_s a string": (
        '[daemon]\nretention_s = "long"\n' + STAGE, 2, "daemon.retention_s", "'long'",
    ),
    "ring memory negative": (
        "[daemon]\nring_memory_mb = -5\n" + STAGE, 2, "daemon.ring_memory_mb", "got -5",
    ),
    "group that does not exist": (
        '[daemon]\ngroup = "no-such-group-here"\n' + STAGE, 2, "daemon.group", "no group",
    ),
    "group of the wrong type": ("[daemon]\ngroup = 0\n" + STAGE, 2, "daemon.group", "got 0"),
    "call_timeout_s a bool": (
        STAGE + "call_timeout_s = true\n", 3, "instruments.stage.call_timeout_s", "got True",
    ),
    "driver parameter of the wrong type": (
        STAGE + 'velocity = "fast"\n', 3, "instruments.stage.velocity", "must be a number",
    ),
    "whole-number parameter given a fraction": (
        '[instruments.camera]\ndriver = "sim.camera"\nsensor_width = 20.5\n', 3,
        "instruments.camera.sensor_width", "whole number",
    ),
    "driver parameter inf": (
        STAGE + "high_limit = inf\n", 3, "instruments.stage.high_limit", "finite",
    ),
    "reference to a missing instrument": (
        STAGE + '[instruments.meter]\ndriver = "sim.power_meter"\nstage = "nosuch"\n', 5,
        "instruments.meter.stage", "names no sim.stage instrument",
    ),
    "default reference to a missing instrument": (
        '[instruments.meter]\ndriver = "sim.power_meter"\n', 1, "instruments.meter",
        "its default 'stage'",
    ),
    "backoff_max_s below backoff_initial_s": (
        "[restart]\nbackoff_initial_s = 2\nbackoff_max_s = 1\n" + STAGE, 3,
        "restart.backoff_max_s", "below backoff_initial_s",
    ),
    "negative timeout": (
        "[restart]\nopen_timeout_s = -1\n" + STAGE, 2, "restart.open_timeout_s", "got -1",
    ),
    "infinite window": ("[restart]\nwindow_s = inf\n" + STAGE, 2, "restart.window_s", "got inf"),
    "nan call timeout": (
        STAGE + "call_timeout_s = nan\n", 3, "instruments.stage.call_timeout_s", "got nan",
    ),
    "exposure of the wrong dimension": (
        '[instruments.camera]\ndriver = "sim.camera"\nexposure = "20 V"\n', 3,
        "instruments.camera.exposure", "is a voltage, not a time",
    ),
    "exposure in no unit pint knows": (
        '[instruments.camera]\ndriver = "sim.camera"\nexposure = "20 mss"\n', 3,
        "instruments.camera.exposure", "'mss' is not a unit",
    ),
    "typo in a key": (
        STAGE + "poll_hzz = 5\n", 3, "instruments.stage.poll_hzz", "did you mean 'poll_hz'?",
    ),
    "typo in a section": (
        "[restrat]\nwindow_s = 5\n" + STAGE, 1, "restrat", "did you mean 'restart'?",
    ),
    "typo in a driver name": (
        '[instruments.stage]\ndriver = "sim.stag"\n', 2, "instruments.stage.driver",
        "did you mean 'sim.stage'?",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_bad_config_value_is_one_line_naming_file_line_and_key(tmp_path: Path, case: str) -> None:
    config, line, key, says = CONFIG_CASES[case]
    message = one_line(serve(tmp_path, config))
    assert f"{tmp_path / 'lab.toml'}:{line}: {key}: " in message
    assert says in message


def test_every_error_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    config = (
        "[daemon]\n"
        "data_dir = 5\n"  # 2
        "[restart]\n"
        "backoff_initial_s = 3\n"
        "backoff_max_s = 1\n"  # 5
        "[instruments.stage]\n"
        'driver = "sim.stage"\n'
        "poll_hz = inf\n"  # 8
        "[instruments.meter]\n"
        'driver = "sim.power_meter"\n'
        'stage = "nosuch"\n'  # 11
        'integration_time = "5 V"\n'  # 12
    )
    lines = error_lines(serve(tmp_path, config))
    path = tmp_path / "lab.toml"
    assert [re.match(r"^(?:labd: )?(\S+:\d+): (\S+): ", line).groups() for line in lines] == [  # type: ignore[union-attr]
        (f"{path}:2", "daemon.data_dir"),
        (f"{path}:5", "restart.backoff_max_s"),
        (f"{path}:8", "instruments.stage.poll_hz"),
        (f"{path}:11", "instruments.meter.stage"),
        (f"{path}:12", "instruments.meter.integration_time"),
    ]


def test_a_file_that_is_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    message = one_line(serve(tmp_path, STAGE.encode() + b"# caf\xe9\n"))
    assert f"{tmp_path / 'lab.toml'}:3:6: not UTF-8 text" in message


def test_a_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    message = one_line(serve(tmp_path, '[instruments.stage]\ndriver = "sim.stage\n'))
    assert f"{tmp_path / 'lab.toml'}:2:20: not valid TOML" in message


def test_a_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = one_line(labd("serve", "--config", str(missing), "--socket", str(tmp_path / "s")))
    assert f"{missing}: cannot read the lab config (No such file or directory)" in message


def test_quantities_with_units_are_converted_to_the_parameters_unit(tmp_path: Path) -> None:
    from capabilities import ExposureControl
    from labd.client import connect_blocking

    config = '[instruments.camera]\ndriver = "sim.camera"\nexposure = "20 ms"\npoll_hz = "2 Hz"\n'
    daemon = start_labd(tmp_path, config=config)
    try:
        with connect_blocking(daemon.address) as lab:
            assert lab.instrument("camera").get(ExposureControl).exposure() == pytest.approx(0.02)
    finally:
        daemon.stop()


# -- the command line --------------------------------------------------------------------

#: (arguments, the argument the message must name). Each is refused while parsing, before
#: anything connects, so no daemon is needed.
ARGUMENT_CASES = [
    (["ls", "--connect", "bad:addr:x"], "--connect"),
    (["ls", "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca"),
    (["watch", "meter", "--seconds", "-5"], "--seconds"),
    (["watch", "meter", "--seconds", "nan"], "--seconds"),
    (["move", "stage", "nan"], "position"),
    (["move", "stage", "inf"], "position"),
    (["share", "stage", "--expires", "-1"], "--expires"),
    (["share", "stage", "--expires", "nan"], "--expires"),
    (["share", "stage", "--range", "5", "1"], "--range"),
    (["share", "stage", "--range", "0", "inf"], "--range"),
    (["run", str(SCAN), "--fuel", "1e400"], "--fuel"),
    (["run", str(SCAN), "--fuel", "nan"], "--fuel"),
    (["run", str(SCAN), "--fuel", "2.5"], "--fuel"),
    (["run", str(SCAN), "--deadline", "-1"], "--deadline"),
    (["run", str(SCAN), "--deadline", "20 V"], "--deadline"),
    (["run", str(SCAN), "--memory", "0"], "--memory"),
    (["run", str(SCAN), "--memory", "1e9"], "--memory"),
    (["replay", "meter/reading", "--since", "-3", "-o", "x.arrows"], "--since"),
    (["replay", "meter/reading", "--start", "nan", "-o", "x.arrows"], "--start"),
    (["demo", "--steps", "1"], "--steps"),
    (["demo", "--stop", "inf"], "--stop"),
    (["demo", "--config", "/nonexistent/lab.toml"], "--config"),
    (["gui", "--connect", "host:notaport"], "--connect"),
    (["gui", "--script-actions", "/nonexistent/actions.json"], "--script-actions"),
    (["serve", "--config", "/nonexistent/lab.toml"], "/nonexistent/lab.toml"),
]


@pytest.mark.parametrize(
    ("args", "named"), ARGUMENT_CASES, ids=[" ".join(args) for args, _ in ARGUMENT_CASES]
)
def test_a_bad_argument_is_one_line_naming_it(args: list[str], named: str, tmp_path: Path) -> None:
    message = one_line(labd(*args, cwd=tmp_path))
    assert named in message
    assert not (tmp_path / "x.arrows").exists()


def test_an_unreachable_daemon_is_one_line() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    message = one_line(labd("ls", "--connect", f"127.0.0.1:{port}"), status=3)
    assert f"no labd daemon at tcp://127.0.0.1:{port}" in message


def test_a_missing_token_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "labd.sock"
    with socket.socket(socket.AF_UNIX) as listener:  # answers, but no token lies beside it
        listener.bind(str(path))
        listener.listen()
        message = one_line(labd("ls", "--connect", str(path)), status=3)
    assert f"no labd token file at {tmp_path / 'labd.token'}" in message


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    process = start_labd(tmp_path_factory.mktemp("labd"))
    yield process
    process.stop()


@pytest.mark.parametrize(
    ("grant", "says"),
    [
        ("nosuch:Movable", "no instrument 'nosuch'"),
        ("nosuch", "no instrument 'nosuch'"),
        ("stag:Movable", "did you mean 'stage'?"),
        ("stage:Readable", "stage is not Readable"),
        ("stage:Nosuch", "unknown capability 'Nosuch'"),
    ],
)
def test_a_grant_the_daemon_cannot_honour_is_refused_before_running(
    daemon: LabdProcess, grant: str, says: str
) -> None:
    result = labd("run", str(SCAN), "--grant", grant, "--connect", daemon.address)
    assert says in one_line(result)
    assert "uploaded" not in result.stdout and "succeeded" not in result.stdout
