"""A real writer process for crash and cross-process tests: a ring set, optionally a
persister, appending numbered batches until told to stop (or killed).

    python -m tests.labd.rings.writer_process ROOT DAEMON_ID KIND COUNT RATE [DATA_DIR RUN_ID]

COUNT 0 means forever; RATE 0 means as fast as possible. Prints "ready" when the rings
exist and "wrote N" every 10 batches, flushing, so the test can follow.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

from labd.records import FRAME_SCHEMA, READING_SCHEMA
from labd.rings import Persister, RingSet
from tests.labd.rings.batches import frame_batch, reading_batch

FRAME_SHAPE = (512, 512)


def main(argv: list[str]) -> None:
    root, daemon_id, kind, count, rate = argv[:5]
    rings = RingSet(daemon_id, root=Path(root), retention_s=2.0, max_bytes=256 << 20)
    if kind == "frames":
        ring = rings.open_stream(
            "camera/frames",
            FRAME_SCHEMA,
            "frames",
            expected_batch_bytes=FRAME_SHAPE[0] * FRAME_SHAPE[1] * 2,
            batches_per_second=50,
        )
    else:
        ring = rings.open_stream(
            "meter/reading",
            READING_SCHEMA,
            "readings",
            expected_batch_bytes=100 * 17,
            batches_per_second=16,
        )
    persister = None
    if len(argv) > 5:
        persister = Persister(Path(argv[5]), argv[6], rotate_bytes=64 << 20)
        persister.follow(ring)
        assert persister.finalizer is not None
        # A restart's test reads what it recovered: have the recovery done before closing.
        persister.finalizer.recovered.wait(30)
    print("ready", flush=True)
    period = 1 / float(rate) if float(rate) else 0.0
    seqs = range(1, int(count) + 1) if int(count) else itertools.count(1)
    for seq in seqs:
        ring.append(seq, frame_batch(seq, FRAME_SHAPE) if kind == "frames" else reading_batch(seq))
        if seq % 10 == 0:
            print(f"wrote {seq}", flush=True)
        if period:
            time.sleep(period)
    if persister is not None:
        persister.close()  # as the daemon does: files finished (and finalized), then rings
    rings.close()


if __name__ == "__main__":
    main(sys.argv[1:])
