"""Ring and persister figures, each against a floor measured in the same run.

* append throughput of 2048x2048 uint16 frames and of 1000-row reading batches, as a
  ratio to a plain memcpy of the same bytes into the same shared mapping (target >= 0.8x
  for frames);
* write-to-visible latency in another process (median, p99), against a bare futex
  wake-up between the same two processes;
* the persister flat out (512 MiB of 8 MiB frames, always more waiting in the ring) as a
  ratio to the disk's floor in the same directory, the better of dd-like buffered writes
  with fdatasync and O_DIRECT writes of the same chunks (the mean of one before and one
  after), in rounds (target >= 0.9x);
* whether it keeps up with 100 frames/s of 8 MiB for 10 s (target: zero lost), or, on a
  disk slower than 1.1x that, with the floor / 1.1;
* the cost of finalizing the persister's 1 GiB frames segment in place, against a synced
  copy of it, and how long ``Persister.close`` (a daemon's stop) takes with an open
  2 GiB frames segment;
* the cost of finalizing a closed 64 MiB segment by conversion (readings to Parquet with
  zstd; frames in the ring's layout copied to an Arrow IPC file), as a ratio to a plain
  copy of the same file (copy + fdatasync), and what the other formats would cost for
  frames (Parquet, IPC with zstd).

Run: .venv/bin/python bench/bench_rings.py [--seconds 10] [--rounds 5] [--data-dir DIR]
[--only finalize|persister]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from capabilities import Frame, Roi
from labd.records import FRAME_SCHEMA, READING_SCHEMA, frame_to_batch
from labd.rings import Persister, RingSet, attach, finalize_segment, persisted_files
from labd.rings.finalize import segment_metadata
from labd.rings.futex import futex_wait, futex_wake
from labd.rings.layout import SEQ_METADATA_KEY

FRAME_SHAPE = (2048, 2048)
ROWS = 1000
LATENCY_SAMPLES = 1000


def frame(seq: int, shape: tuple[int, int] = FRAME_SHAPE) -> pa.RecordBatch:
    data = np.full(shape, seq % 65536, dtype=np.uint16)
    return frame_to_batch(
        Frame(data=data, timestamp=time.time(), exposure_s=0.01, roi=Roi(0, 0, *shape), seq=seq)
    )


def readings(values: np.ndarray) -> pa.RecordBatch:
    unit = (
        pa.array(["W"] * len(values))
        .dictionary_encode()
        .cast(pa.dictionary(pa.int8(), pa.string()))
    )
    ts = pa.array(time.time() + np.arange(len(values)) * 1e-3)
    return pa.record_batch([ts, pa.array(values, pa.float64()), unit], schema=READING_SCHEMA)


def interleaved(fns: list, n: int, rounds: int = 7) -> list[float]:
    """Median time per call of each fn, rounds alternating so that drift hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, samples in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            samples.append((time.perf_counter() - t0) / n)
    return [statistics.median(samples) for samples in times]


def throughput(
    rings: RingSet, name: str, schema: pa.Schema, kind: str, batch: pa.RecordBatch, n: int
):
    ring = rings.open_stream(
        name, schema, kind, expected_batch_bytes=batch.nbytes, batches_per_second=16, retention_s=1
    )
    seq = iter(range(1, 10**9))
    ring.append(next(seq), batch)
    nbytes = ring._words[ring.layout.index_word(1, 1)]  # the IPC bytes of one batch
    size = int(nbytes)
    source = np.frombuffer(
        ring._view[ring.layout.slot_offset(1) : ring.layout.slot_offset(1) + size], np.uint8
    ).copy()
    slots = [
        np.frombuffer(
            ring._view[ring.layout.slot_offset(i) : ring.layout.slot_offset(i) + size], np.uint8
        )
        for i in range(ring.layout.slot_count)
    ]
    memcpy, append = interleaved(
        [
            lambda i: np.copyto(slots[i % len(slots)], source),
            lambda i: ring.append(next(seq), batch),
        ],
        n,
    )
    slots.clear()  # views of the mapping: the ring cannot be closed while they live
    return size, memcpy, append


def latency_reader(root: str, mode: str) -> None:
    """Child process: print the latency samples (ns) as JSON."""
    samples = []
    if mode == "futex":
        mm = mmap.mmap(os.open(root, os.O_RDWR), 4096)
        words = np.frombuffer(mm, dtype="<u8")
        address = words.ctypes.data
        print("ready", flush=True)
        last = 0
        while last < LATENCY_SAMPLES:  # a sample per wake-up; a batch may be skipped
            while int(words[0]) == last:
                futex_wait(address, last, 1.0)
            now = time.monotonic_ns()
            last = int(words[0])
            samples.append(now - int(words[1]))
    else:
        with attach("bench/latency", root=Path(root)) as reader:
            print("ready", flush=True)
            for b in reader.follow(every=True, timeout=5):
                now = time.monotonic_ns()
                with b:
                    sent = b.batch.column("value")[0].as_py()
                samples.append(now - sent)
                if b.seq == LATENCY_SAMPLES:
                    break
    print(json.dumps(samples), flush=True)


def run_latency(argv: list[str], send) -> list[int]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--latency-reader", *argv], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    for seq in range(1, LATENCY_SAMPLES + 1):
        send(seq)
        time.sleep(0.001)  # the reader is asleep in the futex when the next batch comes
    samples = json.loads(child.stdout.readline())
    child.wait()
    return samples


def latency(rings: RingSet) -> tuple[list[int], list[int]]:
    ring = rings.open_stream(
        "bench/latency",
        READING_SCHEMA,
        "readings",
        expected_batch_bytes=ROWS * 17,
        batches_per_second=1000,
        retention_s=1,
    )
    values = np.zeros(ROWS)
    batch = readings(values)  # wraps `values` without a copy: we stamp it before each append

    def send_batch(seq: int) -> None:
        values[0] = time.monotonic_ns()
        ring.append(seq, batch)

    ring_samples = run_latency([str(rings.root), "ring"], send_batch)

    word_file = rings.root / "futex-floor"
    word_file.write_bytes(bytes(4096))
    mm = mmap.mmap(os.open(word_file, os.O_RDWR), 4096)
    words = np.frombuffer(mm, dtype="<u8")

    def send_word(seq: int) -> None:
        words[1] = time.monotonic_ns()
        words[0] = seq
        futex_wake(words.ctypes.data)

    return ring_samples, run_latency([str(word_file), "futex"], send_word)


def dd_floor(directory: Path, chunk: np.ndarray, total: int) -> float:
    """Bytes/s of ``dd bs=8M conv=fdatasync``: buffered writes, one fdatasync at the end."""
    path = directory / "floor.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    t0 = time.perf_counter()
    for _ in range(total // chunk.size):
        os.write(fd, chunk)
    os.fdatasync(fd)
    elapsed = time.perf_counter() - t0
    os.close(fd)
    path.unlink()
    return total / elapsed


def direct_floor(directory: Path, chunk: np.ndarray, total: int) -> float:
    """Bytes/s of O_DIRECT writes of the same chunks from a page-aligned buffer (the
    disk's own rate: no page cache, no copy), then fdatasync."""
    path = directory / "floor.bin"
    aligned = mmap.mmap(-1, chunk.size)
    np.frombuffer(aligned, np.uint8)[:] = chunk
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT)
    t0 = time.perf_counter()
    for _ in range(total // chunk.size):
        os.write(fd, aligned)
    os.fdatasync(fd)
    elapsed = time.perf_counter() - t0
    os.close(fd)
    path.unlink()
    aligned.close()
    return total / elapsed


def frames_ring(rings: RingSet, name: str, batch: pa.RecordBatch, rate: float, retention: float):
    return rings.open_stream(
        name,
        FRAME_SCHEMA,
        "frames",
        expected_batch_bytes=batch.nbytes,
        batches_per_second=rate,
        retention_s=retention,
    )


def persister_flat_out(
    rings: RingSet, data_dir: Path, name: str, n: int
) -> tuple[float, float, Path]:
    """Bytes/s of the persister writing ``n`` frames with always more waiting in the ring
    (the producer keeps it 8 frames short of a lap), timed to the end of ``close`` (the
    data synced); and the closed segment, left unfinalized. A first lap of the ring, not
    timed, warms the persister's mapping of it, as in any acquisition past its first
    seconds (a slot's first read costs a page fault per 4 KiB). Also the CPU seconds per
    frame of the whole process (the producer's appends included)."""
    batch = frame(1)
    slots = 64
    ring = frames_ring(rings, name, batch, slots, 1.0)
    assert ring.layout.slot_count == slots
    p = Persister(data_dir, name.replace("/", "-"), finalize=False, rotate_bytes=1 << 40)
    p.follow(ring)

    def persisted() -> int:
        return p.status()[0].batches

    for seq in range(1, slots + 1):
        ring.append(seq, batch)
    while persisted() < slots:
        time.sleep(0.001)
    warm = p.status()[0].bytes
    t0, cpu = time.perf_counter(), time.process_time()
    for seq in range(slots + 1, slots + n + 1):
        while seq - persisted() >= slots - 8:
            time.sleep(0.0005)
        ring.append(seq, batch)
    p.close()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu
    (status,) = p.status()
    assert status.lost == 0 and status.batches == slots + n, status
    ring.close()
    (segment,) = persisted_files(p.stream_directory(name))
    return (status.bytes - warm) / elapsed, cpu / n, segment


def persister(rings: RingSet, data_dir: Path, seconds: float, rate: float):
    batch = frame(1)
    ring = frames_ring(rings, "bench/frames", batch, rate, 2)
    p = Persister(data_dir, "bench", finalize=False)  # live segments only: see finalize_cost
    p.follow(ring)
    n = int(seconds * rate)
    t0 = time.perf_counter()
    late = 0
    for seq in range(1, n + 1):
        ring.append(seq, batch)
        delay = t0 + seq / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    acquired = time.perf_counter() - t0
    p.close()
    drained = time.perf_counter() - t0
    (status,) = p.status()
    ring.close()
    return n, status, acquired, drained, late, ring.layout.slot_count


def stop_time(rings: RingSet, data_dir: Path, n: int) -> float:
    """Seconds ``Persister.close`` takes (what a daemon's stop waits for) with an open
    frames segment of ``n`` frames on disk: end it, sync it, finalize it."""
    batch = frame(1)
    ring = frames_ring(rings, "bench/stop", batch, 100, 1.0)
    p = Persister(data_dir, "stop", rotate_bytes=1 << 40)
    p.follow(ring)
    for seq in range(1, n + 1):
        ring.append(seq, batch)
        while p.status()[0].batches < seq - 50:  # never lapped: the ring holds 100
            time.sleep(0.005)
    while p.status()[0].batches < n:
        time.sleep(0.005)
    t0 = time.perf_counter()
    p.close()
    elapsed = time.perf_counter() - t0
    assert p.finalizer is not None and not p.finalizer.errors
    ring.close()
    return elapsed


def persister_figures(rings: RingSet, data_dir: Path, seconds: float, rounds: int) -> None:
    """The persister flat out against the disk's floor, rounds alternating; losses at
    100 frames/s (or at the floor / 1.1); finalizing a frames segment; the stop."""
    chunk = np.frombuffer(frame(1).column("pixels").buffers()[2], np.uint8).copy()
    n = 64  # 512 MiB of frames per round
    total = n * chunk.size
    floors, ratios, speeds = [], [], []
    segment = None
    for r in range(rounds):
        # The disk's rate moves by 2-4x within seconds on a shared VM: the persister is
        # measured between two floors, and compared with their mean.
        before = direct_floor(data_dir, chunk, total)
        if segment is not None:
            shutil.rmtree(segment.parent.parent.parent.parent, ignore_errors=True)
        speed, cpu, segment = persister_flat_out(rings, data_dir / f"flat{r}", f"bench/flat{r}", n)
        after = direct_floor(data_dir, chunk, total)
        dd = dd_floor(data_dir, chunk, total // 2)
        floor = max((before + after) / 2, dd)
        floors.append(floor)
        speeds.append(speed)
        ratios.append(speed / floor)
        print(
            f"round {r + 1}: disk floor {floor / 1e6:.0f} MB/s (O_DIRECT before/after "
            f"{before / 1e6:.0f}/{after / 1e6:.0f}, dd-like buffered + fdatasync "
            f"{dd / 1e6:.0f}); persister flat out, 512 MiB of 8 MiB frames after a lap of "
            f"the ring: {speed / 1e6:.0f} MB/s: ratio {speed / floor:.2f}x (target >= 0.9x); "
            f"CPU {cpu * 1e3:.1f} ms per frame"
        )
    print(
        f"persister / disk floor over {rounds} rounds: {min(ratios):.2f}-{max(ratios):.2f}x "
        f"(median {statistics.median(ratios):.2f}x); floor {min(floors) / 1e6:.0f}-"
        f"{max(floors) / 1e6:.0f} MB/s, persister {min(speeds) / 1e6:.0f}-"
        f"{max(speeds) / 1e6:.0f} MB/s"
    )
    assert segment is not None
    finalize_in_place(segment, data_dir)

    floor = min(floors)
    need = 100 * chunk.size
    rate = 100.0 if floor >= 1.1 * need else floor / 1.1 / chunk.size
    why = "" if rate == 100 else f" (the disk's slowest floor, {floor / 1e6:.0f} MB/s, / 1.1)"
    n, status, acquired, drained, late, slots = persister(rings, data_dir, seconds, rate)
    print(
        f"persister at {rate:.0f} frames/s{why} of 8 MiB for {seconds:g} s (ring of {slots} "
        f"frames): {status.batches} of {n} frames on disk, {status.lost} lost; acquisition "
        f"{acquired:.1f} s ({late} frames late), drained {drained - acquired:.2f} s after the "
        f"last frame; needs {status.bytes / acquired / 1e6:.0f} MB/s"
    )
    stop = stop_time(rings, data_dir / "stop", 256)
    print(f"Persister.close with an open 2 GiB frames segment (sync, finalize): {stop:.2f} s")


def finalize_in_place(segment: Path, data_dir: Path) -> None:
    """The cost of finalizing the persister's 1 GiB frames segment (on disk, not in the
    page cache) against a plain synced copy of it (what finalizing by a copy cost)."""
    size = segment.stat().st_size
    copy = data_dir / "copy.bin"
    fd = os.open(segment, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    t0 = time.perf_counter()
    synced_copy(segment, copy)
    copied = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = finalize_segment(segment)
    spent = time.perf_counter() - t0
    assert done is not None and done.path is not None and done.batches == 128
    gib = size / 2**30
    print(
        f"finalize the persister's {gib:.2f} GiB frames segment in place (footer + rename): "
        f"{spent * 1e3 / gib:.0f} ms/GiB; plain copy + fdatasync of it {copied / gib:.2f} s/GiB "
        f"({size / copied / 1e6:.0f} MB/s): {copied / spent:.0f}x faster than a copy"
    )
    pa.ipc.open_file(str(done.path)).get_batch(127)  # a real IPC file
    shutil.rmtree(segment.parent.parent.parent.parent, ignore_errors=True)


SEGMENT_BYTES = 64 << 20


def camera_frame(seq: int, rng: np.random.Generator) -> pa.RecordBatch:
    """A 2048x2048 u16 frame like a camera's: a spot on a background, with shot noise
    (constant frames would flatter every compressor)."""
    y, x = np.ogrid[:2048, :2048]
    spot = 3000 * np.exp(-((x - 1024.0) ** 2 + (y - 1024.0) ** 2) / (2 * 80.0**2))
    data = rng.poisson(100 + spot).astype(np.uint16)
    return frame_to_batch(
        Frame(data=data, timestamp=time.time(), exposure_s=0.01, roi=Roi(0, 0, 2048, 2048), seq=seq)
    )


def write_segment(path: Path, stream: str, kind: str, batches: list[pa.RecordBatch]) -> None:
    """A closed live segment as the persister leaves it (schema metadata, labd.seq)."""
    schema = batches[0].schema.with_metadata(segment_metadata(stream, "bench", "bench", kind))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for seq, batch in enumerate(batches, 1):
            writer.write_batch(batch, custom_metadata={SEQ_METADATA_KEY: str(seq)})


def sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fdatasync(fd)
    os.close(fd)


def synced_copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    sync(target)
    target.unlink()


def frames_as_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")
    sync(path)


def frames_as_ipc_zstd(table: pa.Table, path: Path) -> None:
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with (
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_file(sink, table.schema, options=options) as w,
    ):
        w.write_table(table)
    sync(path)


def timed(fn, *args, rounds: int = 3) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def finalize_once(source: Path, segment: Path) -> tuple[float, int]:
    """Seconds to finalize a fresh copy of ``source`` (finalizing removes it), and the
    finalized file's size."""
    shutil.copyfile(source, segment)
    os.sync()
    t0 = time.perf_counter()
    done = finalize_segment(segment)
    elapsed = time.perf_counter() - t0
    assert done is not None and done.path is not None
    size = done.path.stat().st_size
    done.path.unlink()
    return elapsed, size


def finalize_cost(data_dir: Path) -> None:
    """ms per 64 MiB segment: finalize vs a plain synced copy of the same file."""
    rng = np.random.default_rng(0)
    frames = [camera_frame(seq, rng) for seq in range(1, SEGMENT_BYTES // (8 << 20) + 1)]
    values = rng.normal(1e-3, 1e-5, ROWS)
    rows = [readings(values) for _ in range(SEGMENT_BYTES // (ROWS * 17))]
    work = data_dir / "finalize" / "run"
    work.mkdir(parents=True)
    source = work / "source.arrows"
    for name, kind, batches in (("frames", "frames", frames), ("readings", "readings", rows)):
        write_segment(source, f"bench/{name}", kind, batches)
        size = source.stat().st_size
        runs = [finalize_once(source, work / "_part-000001.arrows") for _ in range(3)]
        cost = statistics.median(t for t, _ in runs)
        out_size = runs[-1][1]
        floor = timed(synced_copy, source, work / "copy.bin")
        # A frames segment in the ring's layout, as labd wrote them before the in-place
        # layout (and still writes frames with dictionary columns): copied into a file.
        target = "Arrow IPC file by a copy" if kind == "frames" else "Parquet zstd"
        print(
            f"finalize {size / 2**20:.0f} MiB of {name} ({len(batches)} batches) to {target}: "
            f"{cost * 1e3:.0f} ms ({size / cost / 1e6:.0f} MB/s), file {out_size / size:.2f}x "
            f"the segment; plain copy + fdatasync {floor * 1e3:.0f} ms "
            f"({size / floor / 1e6:.0f} MB/s): ratio {floor / cost:.2f}x of the copy"
        )
        if kind == "frames":  # the formats not chosen for frames, same data, same sync
            table = pa.Table.from_batches(batches)
            other = work / "other.bin"
            for label, fn in (
                ("Parquet zstd", frames_as_parquet),
                ("Arrow IPC + zstd", frames_as_ipc_zstd),
            ):
                spent = timed(fn, table, other)
                print(
                    f"  frames as {label} instead: {spent * 1e3:.0f} ms, file "
                    f"{other.stat().st_size / size:.2f}x the segment: ratio "
                    f"{floor / spent:.2f}x of the copy"
                )
                other.unlink()
        source.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--data-dir", type=Path, default=None, help="where the persister writes")
    ap.add_argument("--rounds", type=int, default=5, help="persister rounds against the floor")
    ap.add_argument(
        "--only", choices=["finalize", "persister"], help="run only these figures (and no rings)"
    )
    ap.add_argument("--latency-reader", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.latency_reader:
        latency_reader(*args.latency_reader)
        return

    root = Path("/dev/shm") / f"labd-bench-{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="labd-bench-", dir=args.data_dir))
    if args.only == "finalize":
        try:
            finalize_cost(data_dir)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        return
    if args.only == "persister":
        try:
            with RingSet("bench", root=root, max_bytes=8 << 30) as rings:
                persister_figures(rings, data_dir, args.seconds, args.rounds)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
        return
    try:
        with RingSet("bench", root=root, max_bytes=8 << 30) as rings:
            size, memcpy, append = throughput(
                rings, "bench/tp-frames", FRAME_SCHEMA, "frames", frame(1), 40
            )
            print(
                f"frames 2048x2048 u16: append {append * 1e3:.2f} ms ({1 / append:.0f}/s, "
                f"{size / append / 1e9:.2f} GB/s) vs memcpy {memcpy * 1e3:.2f} ms "
                f"({size / memcpy / 1e9:.2f} GB/s): ratio {memcpy / append:.2f}x (target >= 0.8x)"
            )
            size, memcpy, append = throughput(
                rings,
                "bench/tp-readings",
                READING_SCHEMA,
                "readings",
                readings(np.arange(ROWS, dtype=float)),
                2000,
            )
            print(
                f"readings {ROWS} rows ({size} B): append {append * 1e6:.1f} us "
                f"({1 / append:.0f} batches/s, {ROWS / append / 1e6:.2f} M rows/s) vs memcpy "
                f"{memcpy * 1e6:.2f} us: ratio {memcpy / append:.3f}x"
            )
            ring_lat, floor_lat = latency(rings)
            med, p99 = np.median(ring_lat) / 1e3, np.percentile(ring_lat, 99) / 1e3
            fmed, fp99 = np.median(floor_lat) / 1e3, np.percentile(floor_lat, 99) / 1e3
            print(
                f"write-to-visible in another process (futex wait, {ROWS}-row batches): median "
                f"{med:.0f} us, p99 {p99:.0f} us; bare futex wake: median {fmed:.0f} us, p99 "
                f"{fp99:.0f} us: ratio {med / fmed:.2f}x (median), {p99 / fp99:.2f}x (p99)"
            )
            persister_figures(rings, data_dir, args.seconds, args.rounds)
        finalize_cost(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
