"""Analyse live data from Python: attach to the daemon's rings, compute, plot.

    .venv/bin/python examples/analyse_live.py            # a running labd daemon
    .venv/bin/python examples/analyse_live.py --demo     # no daemon: starts a small writer

Reads the last minute of ``meter/reading`` from the ring, follows it live for a few
seconds, and tracks the beam centroid on ``camera/frames`` -- zero-copy, in another
process than the one acquiring, without a single call to the daemon.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from labd.rings import RingLapped, attach

BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, width: int = 60) -> str:
    """A terminal plot: one bar per column, the mean of the values that fall in it."""
    columns = [c.mean() for c in np.array_split(values, min(width, len(values)))]
    low, high = min(columns), max(columns)
    scale = (len(BARS) - 1) / (high - low) if high > low else 0.0
    return "".join(BARS[int((c - low) * scale)] for c in columns)


def readings(daemon: str | None, seconds: float) -> None:
    with attach("meter/reading", daemon=daemon) as ring:
        now = time.time()
        # The ring's history: copies, so the table stays valid while the ring moves on.
        history = [b.copy() for b in ring.between(now - 60, now)]
        if history:
            table = pa.Table.from_batches(history)
            values = table.column("value").to_numpy()
            print(
                f"last minute: {len(values)} readings, mean {values.mean():.4g}, "
                f"std {values.std():.3g} {table.column('unit')[0]}"
            )
            print(f"  {sparkline(values)}")
        count, total = 0, 0.0
        for b in ring.follow(timeout=seconds, every=True):
            with b:  # zero-copy inside the block; raises RingLapped if overwritten meanwhile
                column = b.batch.column("value").to_numpy()
                count, total = count + len(column), total + float(column.sum())
            if time.time() - now > seconds:
                break
        if count:
            print(f"live for {seconds:g} s: {count} readings, mean {total / count:.4g}")


def frames(daemon: str | None, count: int) -> None:
    with attach("camera/frames", daemon=daemon) as ring:
        seen = 0
        for b in ring.follow(every=False, timeout=5):  # newest frame only: never falls behind
            try:
                with b:
                    image = b.frame().data  # a numpy view into shared memory
                    total = image.sum(dtype=np.float64)
                    ys, xs = np.indices(image.shape, sparse=True)
                    cy, cx = (ys * image).sum() / total, (xs * image).sum() / total
            except RingLapped as exc:
                print(f"frame skipped: {exc}")
                continue
            print(
                f"frame {b.seq}: {image.shape[1]}x{image.shape[0]} {image.dtype}, "
                f"centroid x={cx:.1f} y={cy:.1f}"
            )
            seen += 1
            if seen == count:
                break


def demo_writer(seconds: float) -> None:
    """Stand-in for the daemon: a ring set named "demo" with a meter and a camera."""
    from capabilities import Frame, Reading, Roi
    from labd.records import FRAME_SCHEMA, READING_SCHEMA, frame_to_batch, readings_to_batch
    from labd.rings import RingSet

    # SIGTERM (from the parent) ends the `with` block, so the rings are removed cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with RingSet("demo", retention_s=60, max_bytes=256 << 20) as rings:
        meter = rings.open_stream(
            "meter/reading",
            READING_SCHEMA,
            "readings",
            expected_batch_bytes=50 * 17,
            batches_per_second=20,
        )
        camera = rings.open_stream(
            "camera/frames",
            FRAME_SCHEMA,
            "frames",
            expected_batch_bytes=256 * 256 * 2,
            batches_per_second=10,
        )
        ys, xs = np.indices((256, 256))
        print("ready", flush=True)
        start = time.time()
        for seq in range(1, int(seconds * 20) + 1):
            t = time.time()
            beam = 3.0 + np.sin(t - start) + np.random.normal(0, 0.05, 50)
            meter.append(
                seq,
                readings_to_batch(
                    [Reading(float(v), "mW", t + i / 1000) for i, v in enumerate(beam)]
                ),
            )
            if seq % 2 == 0:
                cx = 128 + 60 * np.cos(t - start)
                spot = 4000 * np.exp(-((xs - cx) ** 2 + (ys - 100) ** 2) / 200)
                frame = Frame(
                    data=spot.astype(np.uint16),
                    timestamp=t,
                    exposure_s=0.01,
                    roi=Roi(0, 0, 256, 256),
                    seq=seq // 2,
                )
                camera.append(seq // 2, frame_to_batch(frame))
            time.sleep(max(0.0, start + seq / 20 - time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemon", help="daemon id (needed when several run)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to follow")
    parser.add_argument("--demo", action="store_true", help="start a demo writer first")
    parser.add_argument("--demo-writer", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo_writer:
        demo_writer(args.demo_writer)
        return
    writer = None
    if args.demo:
        writer = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--demo-writer",
                str(args.seconds + 10),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(2)  # let some history accumulate
        args.daemon = "demo"
    try:
        readings(args.daemon, args.seconds)
        frames(args.daemon, 5)
    finally:
        if writer is not None:
            writer.terminate()
            writer.wait()


if __name__ == "__main__":
    main()
