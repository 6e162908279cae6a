"""Persistence is on by default (docs/live-data.md, "Where the files go"): a real ``labd
serve`` writes into ``$XDG_DATA_HOME/labd`` unless the config or the command line says
otherwise, keeps the directory within its disk quota by removing the oldest closed files
(each removal logged), and refuses bad persistence settings in one line.

``XDG_DATA_HOME`` is this test's own (tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labd.client import connect_blocking
from labd.client.replay import DataInfo
from labd.config import default_data_dir, parse_config
from labd.launcher import DaemonProcess, spawn_daemon
from labd.rings import closed_files
from labd.rings.files import part_number

FAST_LAB = """
[daemon]
retention_s = 30
ring_memory_mb = 64
{daemon}

[instruments.stage]
driver = "sim.stage"
poll_hz = 50

[instruments.camera]
driver = "sim.camera"
frame_fps = 25
sensor_width = 256             # 128 KiB frames: 3.1 MiB/s
sensor_height = 256
spot_x = 128
spot_y = 128
"""

REMOVED = re.compile(
    r"retention: removed (\S+) \(([\d.]+ [KMG]?i?B), the oldest closed file\): the data"
    r" directory held [\d.]+ [KMG]?i?B, over its quota of 8\.0 MiB$",
    re.MULTILINE,
)


def lab(tmp_path: Path, daemon: str = "") -> Path:
    path = tmp_path / f"lab-{len(list(tmp_path.glob('lab-*.toml')))}.toml"
    path.write_text(FAST_LAB.format(daemon=daemon))
    return path


def data_info(daemon: DaemonProcess) -> DataInfo:
    with connect_blocking(daemon.address) as client:
        return client.data_info()


def persisted(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*part-*") if p.is_file())


def wait_for_files(data_dir: Path, count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(persisted(data_dir)) < count:
        assert time.monotonic() < deadline, f"nothing persisted under {data_dir}"
        time.sleep(0.1)


def wait_for_batches(daemon: DaemonProcess, *streams: str, timeout: float = 30) -> None:
    """Until each of ``streams`` has a batch on disk."""
    deadline = time.monotonic() + timeout
    while not all(
        any(p.stream == s and p.batches for p in data_info(daemon).persisted) for s in streams
    ):
        assert time.monotonic() < deadline, daemon.log_text()
        time.sleep(0.1)


def test_the_default_data_dir_is_under_xdg_data_home(tmp_path: Path, data_home: Path) -> None:
    with spawn_daemon(lab(tmp_path), workdir=tmp_path) as daemon:
        info = data_info(daemon)
        assert info.data_dir == data_home / "labd"
        assert info.disk_quota > 0  # a tenth of the disk
        wait_for_batches(daemon, "camera/frames", "stage/position")
    assert daemon.process.returncode == 0, daemon.log_text()
    files = persisted(data_home / "labd")
    assert any(p.match(f"camera/frames/{info.run_id}/part-000001.arrow") for p in files), files
    assert any(p.match(f"stage/position/{info.run_id}/part-000001.parquet") for p in files)
    for path in [data_home / "labd", *files]:  # private to the daemon's user (security.md)
        assert stat.S_IMODE(path.stat().st_mode) in (0o700, 0o600), path


def test_the_command_line_wins_over_the_config(tmp_path: Path, data_home: Path) -> None:
    config = lab(tmp_path, f'data_dir = "{tmp_path / "from-config"}"')
    with spawn_daemon(config, workdir=tmp_path) as daemon:
        assert data_info(daemon).data_dir == tmp_path / "from-config"
    with spawn_daemon(config, "--data-dir", str(tmp_path / "from-cli"), workdir=tmp_path) as d:
        assert data_info(d).data_dir == tmp_path / "from-cli"
        wait_for_files(tmp_path / "from-cli")
    assert persisted(tmp_path / "from-config") and persisted(tmp_path / "from-cli")
    assert not (data_home / "labd").exists()


def test_persist_false_and_no_persist_write_nothing(tmp_path: Path, data_home: Path) -> None:
    with spawn_daemon(lab(tmp_path, "persist = false"), workdir=tmp_path) as daemon:
        assert data_info(daemon).data_dir is None
        time.sleep(1)
    config = lab(tmp_path, f'data_dir = "{tmp_path / "data"}"')
    with spawn_daemon(config, "--no-persist", workdir=tmp_path) as daemon:
        info = data_info(daemon)
        assert info.data_dir is None and not info.persisted
        status = subprocess.run(
            [sys.executable, "-m", "labd", "data", "--connect", daemon.address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0 and "not persisting" in status.stdout, status
        time.sleep(1)
    assert not (data_home / "labd").exists() and not (tmp_path / "data").exists()


def test_the_quota_removes_the_oldest_closed_files_first(tmp_path: Path, data_home: Path) -> None:
    data = data_home / "labd"
    for run in ("run1", "run2"):
        (tmp_path / run).mkdir()
    # A first run leaves 10+ MiB of closed files.
    with spawn_daemon(lab(tmp_path), workdir=tmp_path / "run1") as daemon:
        first = data_info(daemon).run_id
        deadline = time.monotonic() + 60
        while sum(p.bytes for p in data_info(daemon).persisted) < 10 << 20:
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.2)
    before = closed_files(data)
    assert sum(p.stat().st_blocks * 512 for p in before) > 8 << 20
    # The second keeps the directory within 8 MiB: segments rotate at 512 KiB.
    with spawn_daemon(lab(tmp_path, 'disk_quota = "8 MiB"'), workdir=tmp_path / "run2") as d:
        second = data_info(d).run_id
        deadline = time.monotonic() + 60
        while f"/{second}/part-" not in d.log_text():  # its own closed segments, later
            assert time.monotonic() < deadline, d.log_text()
            time.sleep(0.2)
        log = d.log_text()
        info = data_info(d)
        assert info.disk_quota == 8 << 20 and info.disk_used > 0
    lines = [line for line in log.splitlines() if "retention: removed" in line]
    matches = [REMOVED.search(line) for line in lines]
    assert all(matches), lines  # one line each: what, how big, why
    removed = [Path(m.group(1)) for m in matches if m is not None]
    older = [p for p in removed if p.parent.name == first]
    assert older == before[: len(older)], "the first run's files went oldest first"
    own = [p for p in removed if p.parent.name == second]
    assert own and all(p.name.startswith("part-") for p in own), "never a segment being written"
    for stream_dir in {p.parent for p in own}:
        numbers = [part_number(p) or 0 for p in own if p.parent == stream_dir]
        left = [n for p in stream_dir.iterdir() if (n := part_number(p)) is not None]
        assert numbers == sorted(numbers) and max(numbers) < min(left), (numbers, left)


def removed_runs(log: str) -> set[str]:
    """The runs whose files a daemon's log says it removed."""
    return {Path(m.group(1)).parent.name for m in REMOVED.finditer(log)}


def test_daemons_sharing_a_data_dir_never_remove_each_others_live_run(tmp_path: Path) -> None:
    config = lab(tmp_path, f'data_dir = "{tmp_path / "shared"}"\ndisk_quota = "8 MiB"')
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with (
        spawn_daemon(config, workdir=tmp_path / "a") as a,
        spawn_daemon(config, workdir=tmp_path / "b") as b,
    ):
        runs = {data_info(a).run_id: a, data_info(b).run_id: b}
        deadline = time.monotonic() + 90
        while not all(f"/{run}/part-" in d.log_text() for run, d in runs.items()):
            assert time.monotonic() < deadline, a.log_text() + b.log_text()
            time.sleep(0.5)
        logs = {run: d.log_text() for run, d in runs.items()}
    for run, log in logs.items():
        assert removed_runs(log) == {run}, log  # its own closed files, never the other's


def serve(tmp_path: Path, config: str, *args: str, **env: str) -> list[str]:
    """``labd serve`` refusing to start: exit status 2 and its error lines."""
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = subprocess.run(
        [sys.executable, "-m", "labd", "serve", "--config", str(path),
         "--socket", str(tmp_path / "run" / "labd.sock"), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert not (tmp_path / "run" / "labd.sock").exists()
    return result.stderr.strip().splitlines()


def test_bad_persistence_settings_are_one_line_with_what_to_do(tmp_path: Path) -> None:
    stage = '[instruments.stage]\ndriver = "sim.stage"\n'
    bad = tmp_path / "bad.toml"
    (tmp_path / "a-file").write_text("")
    not_a_dir = tmp_path / "a-file" / "data"
    cases = {
        '[daemon]\ndisk_quota = "-5 GB"\n': (
            f"labd: {bad}:2: daemon.disk_quota: must be a number in GiB > 0",
            "got '-5 GB'",
        ),
        '[daemon]\ndisk_quota = "5 V"\n': (f"labd: {bad}:2: daemon.disk_quota: '5 V'", "GiB"),
        '[daemon]\npersist = "yes"\n': (
            f"labd: {bad}:2: daemon.persist: must be true or false, got 'yes'",
            "nothing is written",
        ),
        f'[daemon]\ndata_dir = "{not_a_dir}"\n': (
            f"labd: {bad}:2: daemon.data_dir: {not_a_dir} cannot be created",
            "not a writable directory",
        ),
    }
    for config, (starts, says) in cases.items():
        (line,) = serve(tmp_path, config + stage)
        assert line.startswith(starts) and says in line, line
    (line,) = serve(tmp_path, stage, "--data-dir", str(not_a_dir))
    assert line.startswith(f"labd serve: --data-dir {not_a_dir}: {not_a_dir} cannot be created")
    (line,) = serve(tmp_path, stage, XDG_DATA_HOME=str(tmp_path / "a-file"))
    assert line.startswith("labd serve: cannot persist to the default data directory: ")
    assert "--data-dir PATH" in line and "--no-persist" in line


def test_config_values_of_persistence(
    tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = '[instruments.stage]\ndriver = "sim.stage"\n'
    assert parse_config(stage).data_dir == data_home / "labd"
    assert parse_config(stage).disk_quota_bytes is None  # retention's default: 10% of the disk
    assert parse_config("[daemon]\npersist = false\n" + stage).data_dir is None
    quota = parse_config('[daemon]\ndisk_quota = "1.5 GiB"\n' + stage).disk_quota_bytes
    assert quota == 3 << 29
    assert parse_config("[daemon]\ndisk_quota = 20\n" + stage).disk_quota_bytes == 20 << 30
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # the XDG spec says: ignore it
    assert default_data_dir() == Path.home() / ".local" / "share" / "labd"
