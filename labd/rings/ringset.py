"""All rings of one daemon: where they live, how much memory they may take, cleanup.

The daemon opens one :class:`RingSet` at start. It removes rings left behind by crashed
daemons (their writer pid is gone, or their heartbeat stopped long ago), refuses to start
if another live daemon uses the same id, sizes each ring from the memory budget, keeps
the heartbeat going, and removes its rings on a clean shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import trio

from labd.rings import layout as L
from labd.rings.access import FileAccess
from labd.rings.errors import RingError, RingSizeError
from labd.rings.reader import _pid_alive, default_root
from labd.rings.sizing import DEFAULT_MEMORY_SHARE, fmt_bytes, mem_available, plan_ring, shm_free
from labd.rings.writer import RingWriter

log = logging.getLogger(__name__)

_DAEMON_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RING_SHARE = 0.5  # a ring takes at most this share of the budget still free when it opens


def _ring_is_stale(path: Path, stale_after_s: float) -> bool:
    """A ring (or half-made ``.tmp``) whose writer is gone or silent for too long."""
    if path.name.endswith(".tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        return not (pid.isdigit() and _pid_alive(int(pid)))
    try:
        with path.open("rb") as f:
            head = np.frombuffer(f.read(L.HEADER_WORDS * L.WORD), dtype="<u8")
    except OSError:
        return False
    if len(head) < L.HEADER_WORDS or int(head[L.H_MAGIC]) != L.MAGIC:
        return True
    if int(head[L.H_STATE]) == L.STATE_CLOSED or not _pid_alive(int(head[L.H_WRITER_PID])):
        return True
    # The pid lives, but maybe it was reused by an unrelated process after a crash.
    return (time.monotonic_ns() - int(head[L.H_HEARTBEAT_NS])) / 1e9 > stale_after_s


def clean_stale_rings(root: Path, stale_after_s: float = 60.0) -> list[Path]:
    """Remove rings of dead daemons under ``root``; returns what was removed."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for daemon_dir in (p for p in root.iterdir() if p.is_dir()):
        for path in daemon_dir.iterdir():
            if path.is_file() and _ring_is_stale(path, stale_after_s):
                path.unlink(missing_ok=True)
                removed.append(path)
        # An empty directory may be a daemon that is just starting: only old ones go.
        with contextlib.suppress(OSError):
            idle_s = time.time() - daemon_dir.stat().st_mtime
            if idle_s > stale_after_s and not any(daemon_dir.iterdir()):
                daemon_dir.rmdir()
    return removed


class RingSet:
    """The rings of one daemon, under ``<root>/<daemon_id>/``."""

    def __init__(
        self,
        daemon_id: str = "default",
        *,
        root: Path | None = None,
        retention_s: float = 300.0,
        max_bytes: int | None = None,
        stale_after_s: float = 60.0,
        file_group: str | None = None,
    ) -> None:
        """``file_group``: a group whose members may read the rings (files 0640,
        directories 0750); None: the daemon's user only (0600, 0700)."""
        if not _DAEMON_ID.fullmatch(daemon_id):
            raise ValueError(
                f"daemon id {daemon_id!r} cannot name a directory: use letters, digits, "
                "'.', '_' and '-' (at most 100, not starting with a dot)"
            )
        self.root = root or default_root()
        self.directory = self.root / daemon_id
        self.retention_s = retention_s
        self.access = FileAccess.for_group(file_group)
        self.access.make_dirs(self.root)  # shared by the daemons of this user
        if self.access.gid is not None:
            self.access.own_dir(self.root)  # the group must be able to enter it
        for path in clean_stale_rings(self.root, stale_after_s):
            log.warning("removed ring %s left behind by a daemon that is gone", path)
        if self.directory.is_dir() and any(self.directory.glob(f"*{L.RING_SUFFIX}")):
            live = next(self.directory.glob(f"*{L.RING_SUFFIX}"))
            pid = int(np.fromfile(live, dtype="<u8", count=L.HEADER_WORDS)[L.H_WRITER_PID])
            raise RingError(
                f"daemon id {daemon_id!r} is in use: {live} belongs to the running process "
                f"{pid}; stop that daemon or give this one another id"
            )
        self.access.own_dir(self.directory)
        available = mem_available()
        if max_bytes is None:
            max_bytes = int(available * DEFAULT_MEMORY_SHARE)
        elif max_bytes > available:
            raise RingSizeError(
                f"rings may use {fmt_bytes(max_bytes)} but only {fmt_bytes(available)} of "
                "memory is available (MemAvailable in /proc/meminfo): lower max_bytes"
            )
        self.max_bytes = min(max_bytes, shm_free(self.root))
        self.used_bytes = 0
        self.writers: dict[str, RingWriter] = {}

    def open_stream(
        self,
        name: str,
        schema: pa.Schema,
        kind: str,
        *,
        expected_batch_bytes: int,
        batches_per_second: float,
        retention_s: float | None = None,
    ) -> RingWriter:
        """Create the ring of stream ``name`` sized for ``retention_s`` (default: the set's).

        ``expected_batch_bytes`` is the largest batch the stream will publish (a frame:
        height × width × itemsize); a larger batch is refused by :meth:`RingWriter.append`.
        """
        if name in self.writers:
            raise ValueError(f"stream {name!r} already has a ring")
        retention_s = retention_s or self.retention_s
        free = self.max_bytes - self.used_bytes
        plan = plan_ring(
            name,
            retention_s=retention_s,
            batches_per_second=batches_per_second,
            expected_batch_bytes=expected_batch_bytes,
            schema_length=len(schema.serialize()),
            max_bytes=int(free * RING_SHARE),
        )
        if plan.note:
            log.warning("%s", plan.note)
        writer = RingWriter(
            self.directory, name, schema, kind, plan, retention_s=retention_s, access=self.access
        )
        self.used_bytes += writer.layout.file_size
        self.writers[name] = writer
        return writer

    def heartbeat(self) -> None:
        for writer in self.writers.values():
            writer.heartbeat()

    async def keep_alive(self, interval_s: float = 1.0) -> None:
        """Trio task: beat the heartbeat of every ring until cancelled."""
        while True:
            self.heartbeat()
            await trio.sleep(interval_s)

    def close(self) -> None:
        """Close and remove every ring (clean shutdown)."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
        with contextlib.suppress(OSError):  # someone put a file there: leave it
            self.directory.rmdir()

    def __enter__(self) -> RingSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
