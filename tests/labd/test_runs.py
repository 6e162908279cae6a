"""Runs on a real ``labd serve`` (docs/runs.md): a client-opened run's record holds its
provenance and the seq ranges of the data written during it; script runs are recorded;
``labd runs`` lists them; ``labd export`` round-trips a run to Parquet and HDF5; a
daemon killed mid-run leaves the run ``interrupted``; a share holder's run names the
share; bad input is one line with the right exit status."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import h5py
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from capabilities import InvalidRequest, Movable
from labd import aio
from labd.cli import runs_cmds
from labd.client import connect, connect_blocking, redeem_blocking
from labd.client import export as client_export
from labd.client.blocking import BlockingLab
from labd.client.scripts import ScriptInfo
from labd.contract.runs import RunRecord
from labd.launcher import DaemonProcess, spawn_daemon
from labd.rings.files import SEQ_COLUMN, ns_to_seconds

REPO = Path(__file__).resolve().parents[2]
SCAN = REPO / "wasm_scripts" / "examples" / "wat" / "scan.wat"

LAB = """
[daemon]
data_dir = "{data_dir}"
retention_s = 30
ring_memory_mb = 32

[instruments.stage]
driver = "sim.stage"
poll_hz = 20
velocity = 500.0
acceleration = 50000.0
settle_time = 0.001

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 50
integration_time = "0.5 ms"

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 20
sensor_width = 96
sensor_height = 64
"""

RUN_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")


def write_config(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "lab.toml"
    config.write_text(LAB.format(data_dir=root / "data"))
    return config


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("runs")
    with spawn_daemon(write_config(root), workdir=root) as process:
        yield process


def labd(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", *args, "--connect", daemon.address],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def parameters_now(lab: BlockingLab) -> dict[str, dict[str, object]]:
    """Every readable parameter of every configurable instrument, as a record holds them."""
    found: dict[str, dict[str, object]] = {}
    for info in lab.instruments():
        if "Configurable" not in info.capabilities:
            continue
        parameters = lab.instrument(info.name).parameters
        found[info.name] = {
            p.name: {"value": parameters.get(p.name), "unit": p.unit}
            for p in parameters.list()
            if p.readable
        }
    return found


def ended(lab: BlockingLab, run_id: str, timeout: float = 30) -> RunRecord:
    """The record once the run has ended (a script run's is closed by a daemon task)."""
    deadline = time.monotonic() + timeout
    while (record := lab.get_run(run_id)).outcome == "running":
        assert time.monotonic() < deadline, f"run {run_id} still running"
        time.sleep(0.05)
    return record


@pytest.fixture(scope="module")
def client_run(daemon: DaemonProcess) -> tuple[RunRecord, float, float]:
    """A run opened by the blocking client: a stage move and a parameter set during it;
    the record, and the times just inside the block."""
    with connect_blocking(daemon.address) as lab:
        time.sleep(1.0)  # the camera's frames and the readings are flowing
        before = parameters_now(lab)
        with lab.run("focus scan", sample="A12", operator="kim") as run:
            inside_start = time.time()
            lab.instrument("stage").get(Movable).move_abs(2.0)
            lab.instrument("meter").parameters["wavelength"].set(1064, "nm")
            time.sleep(1.5)
            inside_end = time.time()
        record = lab.get_run(run.id)
    assert record.instruments.keys() == {"stage", "meter", "camera"}
    for name, values in before.items():
        assert record.instruments[name]["parameters"] == values, name
    return record, inside_start, inside_end


def test_a_client_run_records_its_provenance_and_covers_its_data(
    daemon: DaemonProcess, client_run: tuple[RunRecord, float, float]
) -> None:
    record, inside_start, inside_end = client_run
    assert RUN_ID.match(record.id)
    assert record.name == "focus scan" and record.who == "lab"
    assert record.metadata == {"sample": "A12", "operator": "kim"}
    assert record.outcome == "succeeded" and record.error is None
    assert record.started_s <= inside_start and (record.ended_s or 0) >= inside_end
    config_text = (daemon.socket.parent.parent / "lab.toml").read_text()
    assert record.config["text"] == config_text
    assert record.config["sha256"] == hashlib.sha256(config_text.encode()).hexdigest()
    assert record.versions["labd"] and record.versions["python"]
    for driver in ("sim.stage", "sim.power_meter", "sim.camera"):
        assert record.versions[f"driver {driver}"].startswith("labd ")
    for name, driver in (("stage", "sim.stage"), ("meter", "sim.power_meter")):
        assert record.instruments[name]["driver"] == driver
        assert record.instruments[name]["state"] in ("ready", "busy")
    assert record.daemon["data_dir"] and record.daemon["run"]

    with connect_blocking(daemon.address) as lab:
        assert lab.get_run(record.id) == record
        # The set made during the run is in the run's range of the parameters stream...
        sets = lab.replay_run(record.id, "meter/parameters").to_pylist()
        assert [(s["parameter"], s["number"]) for s in sets] == [("wavelength", 1064.0)]
        # ...and the readings cover the block (whole batches, flushed every 0.2 s).
        for stream in ("meter/reading", "camera/frames"):
            seqs = record.streams[stream]
            assert seqs.first is not None and seqs.last is not None and seqs.batches > 5
            table = lab.replay_run(record.id, stream)
            stamps = table.column("timestamp").to_numpy()
            assert stamps.min() <= inside_start + 0.3, stream
            assert stamps.max() >= inside_end - 0.3, stream
            assert stamps.max() <= (record.ended_s or 0) + 0.1, stream
        # A stream that published nothing during the run covers nothing.
        assert record.streams["scripts/results"].batches == 0
        assert lab.replay_run(record.id, "scripts/results").num_rows == 0


def test_a_failing_block_and_the_async_client(daemon: DaemonProcess) -> None:
    with connect_blocking(daemon.address) as lab:
        with pytest.raises(ZeroDivisionError), lab.run("doomed") as run:
            _ = 1 / 0
        record = lab.get_run(run.id)
    assert record.outcome == "failed"
    assert record.error == "ZeroDivisionError: division by zero"

    async def main() -> RunRecord:
        async with connect(daemon.address) as lab:
            async with lab.run("async scan", sample="B7") as run:
                assert RUN_ID.match(run.id)
            return await lab.get_run(run.id)

    record = aio.run(main)
    assert record.outcome == "succeeded" and record.metadata == {"sample": "B7"}


def test_a_client_that_goes_away_leaves_its_run_disconnected(daemon: DaemonProcess) -> None:
    lab = connect_blocking(daemon.address)
    run = lab.run("abandoned").__enter__()
    lab.close()  # no __exit__: the connection just ends
    with connect_blocking(daemon.address) as other:
        assert ended(other, run.id).outcome == "disconnected"


@pytest.fixture(scope="module")
def script_run(daemon: DaemonProcess) -> tuple[RunRecord, ScriptInfo, int]:
    """The WAT scan, run over RPC: its record, its uploaded version, its engine run."""
    with connect_blocking(daemon.address) as lab:
        scripts = lab.scripts()
        scripts.upload("scan", SCAN.read_text())
        (info,) = [v for v in scripts.versions() if v.name == "scan"]
        run = scripts.run(
            "scan",
            args={"steps": "5", "stop": "4"},
            grants=["stage:Movable", "meter:Readable", "camera:FrameProducer"],
        )
        run.wait(timeout=60)
        engine_run = run.info().id
        (summary,) = [r for r in lab.runs() if r.script == f"scan v{info.version}"]
        return ended(lab, summary.id), info, engine_run


def test_a_script_run_is_recorded_with_its_sha256_args_and_grants(
    script_run: tuple[RunRecord, ScriptInfo, int],
) -> None:
    record, info, engine_run = script_run
    assert record.who == "lab" and record.outcome == "succeeded"
    assert record.script is not None
    assert record.script.name == "scan" and record.script.version == info.version
    assert record.script.sha256 == info.sha256
    assert record.script.args == {"steps": "5", "stop": "4"}
    assert record.script.grants == "camera:FrameProducer; meter:Readable; stage:Movable"
    assert record.script.engine_run == engine_run
    assert record.streams["scripts/results"].batches >= 1  # its results are in its range
    assert record.instruments["meter"]["parameters"]


def test_a_failed_script_run_records_why(daemon: DaemonProcess) -> None:
    with connect_blocking(daemon.address) as lab:
        scripts = lab.scripts()
        scripts.upload("scan", SCAN.read_text())
        run = scripts.run("scan", grants=["*"], fuel=1000)
        with pytest.raises(Exception, match="out-of-fuel"):
            run.wait(timeout=60)
        engine_run = run.info().id
        (summary,) = [
            r for r in lab.runs() if r.script and lab.get_run(r.id).script.engine_run == engine_run
        ]
        record = ended(lab, summary.id)
    assert record.outcome == "failed"
    assert record.error is not None and record.error.startswith("out-of-fuel: ")


def test_labd_runs_lists_client_and_script_runs(
    daemon: DaemonProcess,
    client_run: tuple[RunRecord, float, float],
    script_run: tuple[RunRecord, ScriptInfo, int],
) -> None:
    record, _, _ = client_run
    scripted, info, _ = script_run
    listing = labd(daemon, "runs")
    assert listing.returncode == 0, listing.stderr
    assert record.id in listing.stdout and "focus scan" in listing.stdout
    assert scripted.id in listing.stdout and f"scan v{info.version}" in listing.stdout
    shown = labd(daemon, "runs", record.id)
    assert shown.returncode == 0, shown.stderr
    assert RunRecord.from_json(json.dumps(json.loads(shown.stdout))) == record


def test_the_records_on_disk_read_as_json_lines(
    daemon: DaemonProcess,
    client_run: tuple[RunRecord, float, float],
    script_run: tuple[RunRecord, ScriptInfo, int],
) -> None:
    record, _, _ = client_run
    scripted, info, _ = script_run
    runs = daemon.socket.parent.parent / "data" / "_runs"
    files = sorted(runs.glob("*.json"))
    assert runs / f"{record.id}.json" in files and runs / f"{scripted.id}.json" in files
    rows = duckdb.sql(
        f"select id, name, outcome, script.sha256 from read_json('{runs}/*.json') order by id"
    ).fetchall()
    assert (record.id, "focus scan", "succeeded", None) in rows
    assert (scripted.id, scripted.name, "succeeded", info.sha256) in rows
    frame = pl.scan_ndjson(f"{runs}/*.json").select("id", "who").collect()
    assert frame.height == len(files)
    table = pd.concat(pd.read_json(path, lines=True) for path in files)
    assert set(table["id"]) >= {record.id, scripted.id}


def test_export_round_trips_a_run_to_parquet_and_hdf5(
    daemon: DaemonProcess, client_run: tuple[RunRecord, float, float], tmp_path: Path
) -> None:
    record, _, _ = client_run
    assert runs_cmds.FORMATS == client_export.FORMATS
    with connect_blocking(daemon.address) as lab:
        replayed = {
            stream: lab.replay_run(record.id, stream)
            for stream, seqs in record.streams.items()
            if seqs.batches
        }
    assert {"meter/reading", "camera/frames", "meter/parameters"} <= replayed.keys()

    out = tmp_path / "parquet"
    done = labd(daemon, "export", record.id, "--format", "parquet", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert RunRecord.from_json(json.dumps(json.loads((out / "run.json").read_text()))) == record
    for stream, expected in replayed.items():
        table = pq.read_table(out / f"{stream}.parquet")
        assert table.schema.metadata[b"labd.run_id"] == record.id.encode()
        seqs = table.column(SEQ_COLUMN).to_numpy()
        assert seqs.min() >= (record.streams[stream].first or 0)
        assert seqs.max() <= (record.streams[stream].last or 0)
        back = table.drop_columns([SEQ_COLUMN])
        back = back.set_column(0, "timestamp", ns_to_seconds(back.column("timestamp")))
        assert back.column_names == expected.column_names
        for name in expected.column_names:
            assert back.column(name).to_pylist() == expected.column(name).to_pylist(), name

    path = tmp_path / "run.h5"
    done = labd(daemon, "export", record.id, "--format", "hdf5", "-o", str(path))
    assert done.returncode == 0, done.stderr
    with h5py.File(path, "r") as hdf:
        assert RunRecord.from_json(hdf.attrs["labd.run"]) == record
        for stream, expected in replayed.items():
            group = hdf[stream]
            assert group.attrs["first_seq"] == record.streams[stream].first
            assert group.attrs["last_seq"] == record.streams[stream].last
            for name in expected.column_names:
                if name == "pixels":
                    continue
                column = expected.column(name)
                values = group[name][()]
                if pa.types.is_dictionary(column.type) or pa.types.is_string(column.type):
                    values = [v.decode() for v in values]
                    assert values == [str(v) for v in column.to_pylist()], (stream, name)
                else:
                    np.testing.assert_array_equal(values, column.to_numpy(), err_msg=name)
        assert hdf["meter/reading/value"].attrs["unit"] == "W"
        frames = replayed["camera/frames"]
        stack = hdf["camera/frames/frames"]
        assert stack.shape == (frames.num_rows, 64, 96)
        for row in (0, frames.num_rows - 1):
            pixels = frames.column("pixels")[row].as_py()
            dtype = frames.column("dtype")[row].as_py()
            np.testing.assert_array_equal(
                stack[row], np.frombuffer(pixels, dtype=dtype).reshape(64, 96)
            )

    out = tmp_path / "csv"
    done = labd(daemon, "export", record.id, "--format", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "camera/frames: skipped" in done.stdout
    assert not (out / "camera" / "frames.csv").exists()
    lines = (out / "meter" / "reading.csv").read_text().splitlines()
    assert len(lines) == replayed["meter/reading"].num_rows + 1


def test_a_share_holders_run_names_the_share(daemon: DaemonProcess) -> None:
    with connect_blocking(daemon.address) as lab:
        token, _ = lab.instrument("stage").share()
        with redeem_blocking(token, daemon.address) as stage, stage.run("shared move") as run:
            stage.get(Movable).move_abs(1.0)
        record = lab.get_run(run.id)
    assert record.who == f"share stage {token[:12]}"
    assert token not in record.to_json()  # the token itself is a secret
    assert record.outcome == "succeeded"


def test_bad_input_is_one_line(daemon: DaemonProcess, tmp_path: Path) -> None:
    unknown = labd(daemon, "runs", "20200101T000000-deadbeef")
    assert unknown.returncode == 1
    assert "no run '20200101T000000-deadbeef'" in one_line_error(unknown)
    unknown = labd(daemon, "export", "nope", "--format", "parquet", "-o", str(tmp_path / "x"))
    assert unknown.returncode == 1 and "no run 'nope'" in one_line_error(unknown)
    with connect_blocking(daemon.address) as lab, lab.run("tiny"):
        pass
    run_id = lab_runs_last(daemon)
    bad_format = labd(daemon, "export", run_id, "--format", "xls", "-o", str(tmp_path / "x"))
    assert bad_format.returncode == 2 and "invalid choice: 'xls'" in one_line_error(bad_format)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for fmt, target in (("parquet", blocker / "out"), ("hdf5", blocker / "out.h5")):
        unwritable = labd(daemon, "export", run_id, "--format", fmt, "-o", str(target))
        assert unwritable.returncode == 2, unwritable.stderr
        assert f"cannot write {target}" in one_line_error(unwritable)


def lab_runs_last(daemon: DaemonProcess) -> str:
    with connect_blocking(daemon.address) as lab:
        return lab.runs()[-1].id


def test_a_daemon_killed_mid_run_leaves_it_interrupted(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with spawn_daemon(config, workdir=tmp_path) as first:
        lab = connect_blocking(first.address)
        run = lab.run("killed").__enter__()
        time.sleep(1.0)  # readings of the run reach the files
        stored = tmp_path / "data" / "_runs" / f"{run.id}.json"
        assert RunRecord.from_json(stored.read_text()).outcome == "running"
        assert stored.stat().st_mode & 0o777 == 0o600  # as private as the persisted files
        first.process.kill()
        first.process.wait()
        lab.close()
    assert RunRecord.from_json(stored.read_text()).outcome == "running"
    with spawn_daemon(config, workdir=tmp_path) as second, connect_blocking(second.address) as lab:
        record = lab.get_run(run.id)
        # Replay by id reads the files the killed daemon left.
        readings = lab.replay_run(run.id, "meter/reading")
    assert record.outcome == "interrupted" and record.ended is None
    assert record.error is not None and "stopped while the run was going" in record.error
    assert RunRecord.from_json(stored.read_text()).outcome == "interrupted"
    assert readings.num_rows > 0
    assert math.isfinite(readings.column("timestamp").to_numpy().min())


def test_without_persistence_runs_are_kept_in_memory(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with (
        spawn_daemon(config, "--no-persist", workdir=tmp_path) as process,
        connect_blocking(process.address) as lab,
    ):
        with lab.run("volatile", sample="C3") as run:
            time.sleep(0.5)
        record = lab.get_run(run.id)
        assert [r.id for r in lab.runs()] == [run.id]
        assert lab.replay_run(run.id, "meter/reading").num_rows > 0  # from the ring
    assert record.outcome == "succeeded" and record.daemon["data_dir"] == ""
    assert not (tmp_path / "data" / "_runs").exists()


def test_the_run_book_keeps_the_newest_runs_in_memory_and_older_ones_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon that runs scripts for weeks must not hold every record it ever made.
    from labd import runs
    from labd.contract.runs import RunRecord
    from labd.rings.access import FileAccess

    monkeypatch.setattr(runs, "KEPT_IN_MEMORY", 2)
    ids = [f"2026120{day}T000000-0000000{day}" for day in range(1, 6)]
    for n, run_id in enumerate(ids):
        outcome = "running" if n == 0 else "succeeded"  # the oldest was cut off by a kill
        record = RunRecord(id=run_id, name=f"scan {n}", who="lab", started="x", outcome=outcome)
        (tmp_path / f"{run_id}.json").write_text(record.to_json() + "\n")
    book = runs.RunBook.__new__(runs.RunBook)
    book.directory, book._records = tmp_path, {}
    book._access = FileAccess.for_group(None)
    book._load()
    assert [r.id for r in book.list()] == ids[-2:]
    assert book.get(ids[0]).outcome == "interrupted"  # found, marked, and on disk
    assert book.get(ids[1]).name == "scan 1"  # read from its file
    with pytest.raises(InvalidRequest, match=re.escape("no run '../x'")):
        book.get("../x")
