"""Time-travel data: every stream in a shared-memory ring, readable zero-copy, persisted.

Daemon side::

    rings = RingSet("default", retention_s=300)
    persister = Persister(data_dir, run_id)   # segments: <data_dir>/<stream>/<run_id>/
    ring = rings.open_stream("camera/frames", FRAME_SCHEMA, "frames",
                             expected_batch_bytes=2048 * 2048 * 2, batches_per_second=100)
    persister.follow(ring)
    stream.add_sink(ring.append)

Analysis side, in any process on the machine::

    with attach("camera/frames") as ring:
        for b in ring.follow(every=False):
            with b:                      # raises RingLapped if the frame changed under us
                print(b.frame().data.mean())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from labd.rings.errors import BatchTooLarge, RingError, RingLapped, RingNotFound, RingSizeError
from labd.rings.files import (
    closed_files,
    persisted_files,
    read_finalized_file,
    stream_directory,
)
from labd.rings.reader import BatchMissing, RingBatch, RingReader, attach, default_root, list_rings
from labd.rings.stream_files import (
    read_stream_file,
    read_stream_file_messages,
    tail_stream_file,
)

if TYPE_CHECKING:
    from labd.rings.finalize import Finalized, Finalizer, finalize_all, finalize_segment
    from labd.rings.persister import Persister, PersistStatus
    from labd.rings.replay import RawBatch, replay, replay_raw
    from labd.rings.ringset import RingSet, clean_stale_rings
    from labd.rings.writer import RingWriter

_DAEMON_SIDE = {
    "Finalized": "finalize",
    "Finalizer": "finalize",
    "finalize_all": "finalize",
    "finalize_segment": "finalize",
    "Persister": "persister",
    "PersistStatus": "persister",
    "RawBatch": "replay",
    "replay": "replay",
    "replay_raw": "replay",
    "RingSet": "ringset",
    "clean_stale_rings": "ringset",
    "RingWriter": "writer",
}
"""Names imported on first use: a reader (a client, the GUI, a notebook) that only
attaches to rings never loads the writing and persisting side (docs/architecture.md)."""


def __getattr__(name: str) -> Any:
    module = _DAEMON_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module 'labd.rings' has no attribute {name!r}")
    loaded = importlib.import_module(f"labd.rings.{module}")
    # Bind every name of that module here: importing ``labd.rings.replay`` just made
    # ``labd.rings.replay`` the module, and the function of that name must win.
    for other, where in _DAEMON_SIDE.items():
        if where == module:
            globals()[other] = getattr(loaded, other)
    return globals()[name]


__all__ = [
    "BatchMissing",
    "BatchTooLarge",
    "Finalized",
    "Finalizer",
    "PersistStatus",
    "Persister",
    "RawBatch",
    "RingBatch",
    "RingError",
    "RingLapped",
    "RingNotFound",
    "RingReader",
    "RingSet",
    "RingSizeError",
    "RingWriter",
    "attach",
    "clean_stale_rings",
    "closed_files",
    "default_root",
    "finalize_all",
    "finalize_segment",
    "list_rings",
    "persisted_files",
    "read_finalized_file",
    "read_stream_file",
    "read_stream_file_messages",
    "replay",
    "replay_raw",
    "stream_directory",
    "tail_stream_file",
]
