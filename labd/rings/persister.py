"""Write every batch of a ring to disk, off the acquisition thread, and survive crashes.

The persister is one more reader of the ring: when the writer appends batch ``seq`` it
hands the number to a disk thread, which writes the batch's messages *from the shared
mapping* into the stream's current ``.arrows`` segment (no second serialisation, no extra
copy) and then re-checks the seqlock; a batch overwritten before it reached the disk is
truncated away and counted as lost. Segments are one Arrow IPC stream each, rotated by
size, numbered per run and stream (:mod:`labd.rings.files` has the layout); a restart
never appends to an old segment (its tail may be torn) but starts the next number. A
closed segment is handed to the :class:`~labd.rings.finalize.Finalizer`, which turns it
into Parquet or an Arrow IPC file in its own thread; at start it also finalizes the
segments that killed daemons left open. The disk thread holds an ``flock`` on the
segment it writes, which is how others (recovery, retention: :func:`closed_files`) tell
it from one left behind. Files and the directories made for them are private to the
daemon's user unless a group was given (:mod:`labd.rings.access`).

Keeping up with 100 frames/s of 8 MiB needs ``fdatasync`` every few tens of MiB plus
``posix_fadvise(DONTNEED)`` on what was synced: otherwise dirty page cache piles up and
the kernel stalls the writer in large bursts. A full disk or an unwritable directory is
logged once with what to do, shown in :meth:`Persister.status`, and retried with each
new batch; acquisition never waits for the disk, the ring keeps the data meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from labd.rings.access import FileAccess
from labd.rings.errors import RingLapped
from labd.rings.files import (
    LIVE_SUFFIX,
    closed_files,
    live_path,
    part_number,
    persisted_files,
    stream_directory,
)
from labd.rings.finalize import Finalizer, segment_metadata
from labd.rings.layout import EOS_MARKER
from labd.rings.reader import BatchMissing, RingReader
from labd.rings.writer import RingWriter

log = logging.getLogger(__name__)

FILE_SUFFIX = LIVE_SUFFIX

__all__ = ["PersistStatus", "Persister", "closed_files", "persisted_files", "stream_directory"]


@dataclass(frozen=True)
class PersistStatus:
    """What the disk thread of one stream has done (a snapshot)."""

    stream: str
    directory: Path
    file: Path | None  # the live segment being written now
    batches: int  # written and complete
    bytes: int
    lost: int  # appended to the ring but not persisted (overwritten first, or disk error)
    last_seq: int
    error: str | None  # the current disk problem, None while writing works


class _StreamPersister:
    """The disk thread of one stream (a :class:`~labd.rings.writer.RingFollower`)."""

    def __init__(
        self,
        ring: RingWriter,
        directory: Path,
        *,
        rotate_bytes: int,
        sync_bytes: int,
        access: FileAccess,
        file_metadata: dict[str, str],
        on_closed: Callable[[Path], None] | None,
    ) -> None:
        self.stream = ring.stream
        self._access = access
        self._schema_bytes = ring.schema_bytes
        # The segment's own schema message names its stream, run and daemon: a segment
        # left by a killed daemon is finalized with them. The batches are the ring's.
        self._file_schema_bytes = (
            ring.schema.with_metadata({**(ring.schema.metadata or {}), **file_metadata})
            .serialize()
            .to_pybytes()
        )
        self._on_closed = on_closed
        self._reader = RingReader(ring.path)
        self._directory = directory
        self._rotate_bytes = rotate_bytes
        self._sync_bytes = sync_bytes
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._fd: int | None = None
        self._pos = 0  # end of the last complete batch in the current file
        self._synced = 0
        self.status = PersistStatus(self.stream, directory, None, 0, 0, 0, 0, None)
        self._thread = threading.Thread(
            target=self._run, name=f"persist {self.stream}", daemon=True
        )
        self._thread.start()

    # RingFollower
    def appended(self, seq: int) -> None:
        self._queue.put(seq)

    def ring_closing(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        try:
            while (seq := self._queue.get()) is not None:
                try:
                    self._persist(seq)
                except Exception:  # a bug must not stop persisting the batches after it
                    log.exception("persisting batch %d of %s failed", seq, self.stream)
                    self.status = replace(self.status, lost=self.status.lost + 1)
        finally:
            self._finish_file()
            self._reader.close()

    def _persist(self, seq: int) -> None:
        try:
            batch = self._reader.get(seq)
        except RingLapped:
            self._lose(f"batch {seq} was overwritten in the ring before it reached the disk")
            return
        except BatchMissing:
            return  # refused by the writer: it was never in the ring
        schema_length = len(self._schema_bytes)
        body = memoryview(batch.raw)[schema_length : batch.raw.size - len(EOS_MARKER)]
        nbytes = len(body)
        try:
            if self._fd is None:
                self._open_next_file()
            assert self._fd is not None
            _write_all(self._fd, body)
            if not batch.still_valid():
                self._rewind()
                self._lose(f"batch {seq} was overwritten in the ring while being written")
                return
            self._pos += nbytes
            if self._pos - self._synced >= self._sync_bytes:
                self._sync()
        except OSError as exc:
            self._disk_failed(exc)
            return
        finally:
            body.release()
        if self.status.error is not None:
            log.warning("persisting %s works again (%s)", self.stream, self.status.file)
        self.status = replace(
            self.status,
            batches=self.status.batches + 1,
            bytes=self.status.bytes + nbytes,
            last_seq=seq,
            error=None,
        )
        if self._pos >= self._rotate_bytes:
            self._finish_file()

    def _open_next_file(self) -> None:
        self._access.make_dirs(self._directory)
        existing = persisted_files(self._directory)
        number = (part_number(existing[-1]) or 0) + 1 if existing else 1
        path = live_path(self._directory, number)
        # Locked before it has its name: recovery never mistakes it for a dead daemon's.
        tmp = self._directory / f".{path.name}.{os.getpid()}.tmp"
        fd = self._access.create_file(tmp, os.O_WRONLY | os.O_EXCL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _write_all(fd, memoryview(self._file_schema_bytes))
            os.rename(tmp, path)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        self._fd, self._pos, self._synced = fd, len(self._file_schema_bytes), 0
        self.status = replace(self.status, file=path)

    def _rewind(self) -> None:
        """Cut a partly written batch off, and write the next one where it began."""
        assert self._fd is not None
        os.ftruncate(self._fd, self._pos)
        os.lseek(self._fd, self._pos, os.SEEK_SET)  # else the next write leaves a hole

    def _sync(self) -> None:
        assert self._fd is not None
        os.fdatasync(self._fd)
        # Clean pages are dropped so the page cache does not fill with data we will not read.
        os.posix_fadvise(self._fd, 0, self._pos, os.POSIX_FADV_DONTNEED)
        self._synced = self._pos

    def _finish_file(self) -> None:
        """End the current file with the end-of-stream marker, so tailers know it is done."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        path = self.status.file
        try:
            os.ftruncate(fd, self._pos)  # drop a partial batch left by a failed write
            _write_all(fd, memoryview(EOS_MARKER))
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            self._disk_failed(exc)
        finally:
            os.close(fd)  # and with it the lock: the segment is closed
        self.status = replace(self.status, file=None)
        if path is not None and self._on_closed is not None:
            self._on_closed(path)

    def _disk_failed(self, exc: OSError) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # keep the file readable to its last batch
                self._rewind()
        message = (
            f"cannot persist stream {self.stream!r} to {self._directory}: {exc.strerror or exc}. "
            "Acquisition goes on and the ring keeps the most recent data; free disk space or "
            "point persistence at a writable directory (retrying with every new batch)"
        )
        if self.status.error is None:
            log.error("%s", message)
        self.status = replace(self.status, error=message, lost=self.status.lost + 1)

    def _lose(self, why: str) -> None:
        if self.status.lost == 0 or self.status.lost % 1000 == 0:
            log.warning(
                "persisting %s fell behind: %s (%d lost so far); the disk is slower than "
                "acquisition: use a faster disk or give the ring more retention",
                self.stream,
                why,
                self.status.lost + 1,
            )
        self.status = replace(self.status, lost=self.status.lost + 1)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Persister:
    """Persists rings of one daemon run to ``<directory>/<stream>/<run_id>/``: the live
    segment ``_part-N.arrows``, finalized into ``part-N.parquet`` or ``part-N.arrow``."""

    def __init__(
        self,
        directory: Path,
        run_id: str,
        *,
        rotate_bytes: int = 1 << 30,
        sync_bytes: int = 32 << 20,
        file_group: str | None = None,
        finalize: bool = True,
    ) -> None:
        """``file_group``: a group whose members may read the files (0640, directories
        0750); None: the daemon's user only (0600, 0700). Raises ValueError for a group
        that does not exist or that the daemon's user is not in.

        ``finalize``: convert each closed segment (and, from a thread started now, those
        that killed daemons left under ``directory``); False keeps the ``.arrows``."""
        self.access = FileAccess.for_group(file_group)
        self.directory = Path(directory)
        self.run_id = run_id
        self.rotate_bytes = rotate_bytes
        self.sync_bytes = sync_bytes
        self._streams: dict[str, _StreamPersister] = {}
        self.finalizer = (
            Finalizer(access=self.access, recover_dir=self.directory) if finalize else None
        )

    def follow(self, ring: RingWriter) -> None:
        """Persist every batch appended to ``ring`` from now on."""
        if ring.stream in self._streams:
            raise ValueError(f"stream {ring.stream!r} is already persisted")
        # The ring's directory is named by the daemon's id (labd.rings.ringset).
        metadata = segment_metadata(ring.stream, self.run_id, ring.path.parent.name, ring.kind)
        follower = _StreamPersister(
            ring,
            stream_directory(self.directory, self.run_id, ring.stream),
            rotate_bytes=self.rotate_bytes,
            sync_bytes=self.sync_bytes,
            access=self.access,
            file_metadata=metadata,
            on_closed=self.finalizer.submit if self.finalizer is not None else None,
        )
        ring.add_follower(follower)
        self._streams[ring.stream] = follower

    def stream_directory(self, stream: str) -> Path:
        return stream_directory(self.directory, self.run_id, stream)

    def status(self) -> list[PersistStatus]:
        return [s.status for s in self._streams.values()]

    def close(self) -> None:
        """Write what is queued, end every segment cleanly and finalize it, stop the threads."""
        for follower in self._streams.values():
            follower.stop()
        if self.finalizer is not None:
            self.finalizer.close()

    def __enter__(self) -> Persister:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
