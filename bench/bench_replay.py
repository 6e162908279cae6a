"""Replay throughput over RPC (``Lab.replay``), from the ring and from the files, against
reading the same ring and files locally with :func:`labd.rings.replay` in the same run.

A server process holds four streams, filled before measuring: frames and reading
batches, each once only in a ring (nothing persisted) and once only in files (persisted,
with a ring of a few batches). A client process replays each whole stream over the unix
socket and, as the floor, reads the same ring or files itself (every page touched, as
the RPC path must). Each figure is the best of ``--rounds`` alternating rounds.

Run: .venv/bin/python bench/bench_replay.py [--frames 100] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import trio  # noqa: E402

from capabilities import Frame, Reading, Roi  # noqa: E402
from labd import aio, records  # noqa: E402
from labd.rings import Persister, RingReader, RingSet, replay  # noqa: E402

FRAME_SHAPE = (1024, 1024)  # 2 MiB of uint16
ROWS = 1000
READING_BATCHES = 2000
STREAMS = ("ring/frames", "files/frames", "ring/readings", "files/readings")


def frame_batch(i: int, data: np.ndarray) -> pa.RecordBatch:
    return records.frame_to_batch(Frame(data, 1000.0 + i * 0.01, 0.01, Roi(0, 0, 1024, 1024), i))


def reading_batch(i: int) -> pa.RecordBatch:
    t0 = 1000.0 + i * 0.01
    return records.readings_to_batch([Reading(float(k), "W", t0 + k * 1e-5) for k in range(ROWS)])


def _persisted_up_to(persister: Persister, stream: str) -> int:
    return next(s.last_seq for s in persister.status() if s.stream == stream)


def serve(folder: str, frames: int) -> None:
    """The server process: fill the streams, serve RPC, say where things are on stdout."""
    from labd.rpc.server import serve_rpc
    from labd.streams import StreamHub
    from labd.supervisor import Supervisor

    class BenchDaemon:
        supervisor = Supervisor([])
        streams = StreamHub()
        daemon_id = f"bench-{uuid.uuid4().hex[:8]}"
        run_id = "bench"
        rings = RingSet(daemon_id, retention_s=10_000)
        persister: Persister | None = Persister(Path(folder) / "data", "bench")

    daemon = BenchDaemon()
    rings, persister = daemon.rings, daemon.persister
    assert persister is not None
    data = np.random.default_rng(0).integers(0, 4096, FRAME_SHAPE, dtype=np.uint16)
    sources = {
        "ring/frames": (records.FRAME_SCHEMA, "frames", frames, lambda i: frame_batch(i, data)),
        "files/frames": (records.FRAME_SCHEMA, "frames", frames, lambda i: frame_batch(i, data)),
        "ring/readings": (records.READING_SCHEMA, "readings", READING_BATCHES, reading_batch),
        "files/readings": (records.READING_SCHEMA, "readings", READING_BATCHES, reading_batch),
    }
    for name, (schema, kind, count, make) in sources.items():
        stream = daemon.streams.create(name, schema, kind)
        nbytes = make(0).nbytes + 4096
        persisted = name.startswith("files/")
        ring = rings.open_stream(
            name,
            schema,
            kind,
            expected_batch_bytes=nbytes,
            batches_per_second=4 / 10_000 if persisted else count / 10_000,
        )
        if persisted:
            persister.follow(ring)
        stream.add_sink(ring.append)
        for i in range(count):
            seq = stream.publish(make(i))
            # A ring of four batches: let the disk thread take each before it is reused.
            while persisted and _persisted_up_to(persister, name) < seq - 2:
                time.sleep(0.0005)
    while any(s.last_seq < sources[s.stream][2] for s in persister.status()):
        time.sleep(0.05)
    assert not any(s.lost for s in persister.status()), persister.status()
    socket_path = Path(folder) / "bench.sock"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve_rpc(
                daemon, socket_path=socket_path, task_status=task_status))  # fmt: skip
            where = {
                "socket": str(socket_path),
                "rings": {n: str(w.path) for n, w in rings.writers.items()},
                "files": {n: str(persister.stream_directory(n)) for n in sources},
            }
            print(json.dumps(where), flush=True)
            await trio.sleep_forever()

    try:
        aio.run(main)
    finally:
        persister.close()
        rings.close()


def touch(batch: pa.RecordBatch) -> int:
    """Read one byte per page of every buffer (a mapped file must really be read)."""
    total = 0
    for column in batch.columns:
        for buf in column.buffers():
            if buf is not None and buf.size:
                total += int(np.frombuffer(buf, np.uint8)[::4096].sum())
    return total


def over_rpc(socket_path: str, stream: str) -> tuple[int, int, float]:
    from labd.client import connect

    async def main() -> tuple[int, int, float]:
        count = nbytes = 0
        async with connect(socket_path) as lab:
            start = time.perf_counter()
            async with lab.replay_batches(stream, 0.0, math.inf) as batches:
                async for _, batch in batches:
                    touch(batch)
                    count += 1
                    nbytes += batch.nbytes
            return count, nbytes, time.perf_counter() - start

    result: tuple[int, int, float] = aio.run(main)
    return result


def locally(where: dict[str, Any], stream: str) -> tuple[int, int, float]:
    ring = RingReader(where["rings"][stream]) if stream.startswith("ring/") else None
    directory = Path(where["files"][stream]) if stream.startswith("files/") else None
    count = nbytes = 0
    start = time.perf_counter()
    for _, batch in replay(0.0, math.inf, ring=ring, directory=directory):
        touch(batch)
        count += 1
        nbytes += batch.nbytes
    elapsed = time.perf_counter() - start
    if ring is not None:
        ring.close()
    return count, nbytes, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per frame stream")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.frames)
        return
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", folder, "--frames", str(args.frames)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            where = json.loads(server.stdout.readline())
            print(f"replay of whole streams, best of {args.rounds} rounds (unix socket)")
            print(f"{'stream':16} {'over RPC':>26} {'local floor':>26} {'ratio':>7}")
            for stream in STREAMS:
                rpc: list[tuple[int, int, float]] = []
                local: list[tuple[int, int, float]] = []
                for _ in range(args.rounds):
                    local.append(locally(where, stream))
                    rpc.append(over_rpc(where["socket"], stream))
                n, nbytes, t_rpc = min(rpc, key=lambda r: r[2])
                n_local, _, t_local = min(local, key=lambda r: r[2])
                assert n == n_local, f"{stream}: {n} batches over RPC, {n_local} locally"
                print(
                    f"{stream:16} {n / t_rpc:8.0f} b/s {nbytes / t_rpc / 1e6:8.0f} MB/s"
                    f" {n / t_local:8.0f} b/s {nbytes / t_local / 1e6:8.0f} MB/s"
                    f" {t_local / t_rpc:6.2f}x"
                )
        finally:
            server.terminate()
            server.wait(10)
            os.sync()


if __name__ == "__main__":
    main()
