"""Write every batch of a ring to disk, off the acquisition thread, and survive crashes.

The persister is one more reader of the ring. For each stream two threads share the
work: when the writer appends batch ``seq``, the *copying* thread copies the batch's
messages from the shared mapping into one of a few page-aligned buffers and then
re-checks the seqlock (a batch overwritten before it was copied is dropped and counted
as lost); the *disk* thread writes the buffers out in order. So the copy of the next
batch overlaps the disk write of the last, and a buffer holds a consistent batch however
long the disk takes. A frames segment holds each batch in its finalized schema (the
pixels are still the slot's bytes, handed to the copy as views of the mapping) so that
finalizing it costs a footer (:mod:`labd.rings.ipc_segment`); other streams' segments
hold the slot's messages unchanged. Segments are one Arrow IPC stream each, rotated by
size, numbered per run and stream (:mod:`labd.rings.files` has the layout); a restart
never appends to an old segment (its tail may be torn) but starts the next number. A
closed segment is handed to the :class:`~labd.rings.finalize.Finalizer`, which turns it
into Parquet or an Arrow IPC file in its own thread; at start it also finalizes the
segments that killed daemons left open. The copying thread holds an ``flock`` on the
segment it writes, which is how others (recovery, retention: :func:`closed_files`) tell
it from one left behind. Files and the directories made for them are private to the
daemon's user unless a group was given (:mod:`labd.rings.access`).

Streams of large batches (frames) are written with ``O_DIRECT``: whole 4 KiB blocks
straight from the buffer to the disk, the last one padded with zeros and rewritten whole
with the next batch, so the file is complete to its last batch (which a SIGKILL does not
lose) and then holds at most a block of zeros, which stream readers take for the end. On
a machine whose other jobs fill the page cache with dirty data, every buffered write
(even of a few bytes) is throttled with theirs; direct writes keep the disk's own rate
(bench/README.md, "Persister"). Streams of small batches, and file systems without
``O_DIRECT``, write through the page cache with ``fdatasync`` every few tens of MiB plus
``posix_fadvise(DONTNEED)`` on what was synced, so dirty pages never pile up. A full
disk or an unwritable directory is logged once with what to do, shown in
:meth:`Persister.status`, and retried with each new batch; acquisition never waits for
the disk, the ring keeps the data meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from labd.rings import ipc_segment
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


BLOCK = 4096
"""The unit of ``O_DIRECT`` writes (offsets, lengths and buffer addresses)."""

DIRECT_MIN_BATCH = 1 << 20
"""Streams whose ring slots are at least this large are written with ``O_DIRECT``."""

BUFFERS = 3
"""Buffers between the copying and the disk thread of a stream: the copy of one batch
overlaps the write of the one before, and a third absorbs a hiccup of either."""


class _Write(NamedTuple):
    """A buffer for the disk thread: ``length`` bytes for the file at ``offset``
    (block-aligned: the buffer starts with the segment's last partial block)."""

    buffer: mmap.mmap
    offset: int
    length: int
    seq: int
    nbytes: int  # of batch seq, the rest is the partial block before it


def _round_up(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


class _StreamPersister:
    """The copying and disk threads of one stream (a :class:`~labd.rings.writer.RingFollower`)."""

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
        self._ring_schema_length = len(ring.schema_bytes)
        # The segment's own schema message names its stream, run and daemon: a segment
        # left by a killed daemon is finalized with them.
        self._encoder: ipc_segment.Encoder | None = None
        if ipc_segment.in_place(ring.schema, ring.kind):
            schema = ipc_segment.segment_schema(ring.schema, file_metadata)
            self._header = ipc_segment.header(schema)
            self._encoder = ipc_segment.Encoder(schema)
        else:  # the ring's messages unchanged
            metadata = {**(ring.schema.metadata or {}), **file_metadata}
            self._header = ring.schema.with_metadata(metadata).serialize().to_pybytes()
        self._direct = ring.plan.slot_size >= DIRECT_MIN_BATCH
        self._on_closed = on_closed
        self._reader = RingReader(ring.path)
        self._directory = directory
        self._rotate_bytes = rotate_bytes
        self._sync_bytes = sync_bytes
        # Large enough for a slot's batch in the file's schema and a partial block.
        self._buffer_size = _round_up(ring.plan.slot_size + 2 * BLOCK)
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for _ in range(BUFFERS):  # anonymous mappings: page-aligned, untouched until used
            self._free.put(mmap.mmap(-1, self._buffer_size))
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._writes: queue.Queue[_Write | None] = queue.Queue()
        self._fd: int | None = None  # buffered, holds the lock
        self._direct_fd: int | None = None
        self._pos = 0  # end of the last complete batch copied for the current file
        self._tail = b""  # the file's bytes from the last block boundary to _pos
        self._written = 0  # end of the last batch the disk thread wrote
        self._synced = 0
        self._failed = False  # a write failed: the copying thread rewinds to _written
        self._status_lock = threading.Lock()
        self.status = PersistStatus(self.stream, directory, None, 0, 0, 0, 0, None)
        self._disk = threading.Thread(target=self._write_loop, name=f"disk {self.stream}")
        self._disk.daemon = True
        self._disk.start()
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

    def _update(self, *, lost: int = 0, **changes: Any) -> None:
        """Change the status (both threads do): ``lost`` more batches lost."""
        with self._status_lock:
            self.status = replace(self.status, lost=self.status.lost + lost, **changes)

    def _run(self) -> None:
        try:
            while (seq := self._queue.get()) is not None:
                try:
                    self._persist(seq)
                except Exception:  # a bug must not stop persisting the batches after it
                    log.exception("persisting batch %d of %s failed", seq, self.stream)
                    self._update(lost=1)
        finally:
            self._finish_file()
            self._writes.put(None)
            self._disk.join()
            self._reader.close()
            while not self._free.empty():
                self._free.get().close()

    def _persist(self, seq: int) -> None:
        try:
            batch = self._reader.get(seq)
        except RingLapped:
            self._lose(f"batch {seq} was overwritten in the ring before it reached the disk")
            return
        except BatchMissing:
            return  # refused by the writer: it was never in the ring
        try:
            if self._fd is None:
                self._open_next_file()
            elif self._failed:
                self._rewind()
        except OSError as exc:
            self._disk_failed(exc)
            return
        if self._encoder is not None:
            parts: list[Any] = self._encoder.parts(seq, batch.batch)
        else:  # the slot is a whole stream: its batch without schema and end marker
            start = self._ring_schema_length
            parts = [batch.raw.slice(start, batch.raw.size - start - len(EOS_MARKER))]
        buffer = self._free.get()  # waits while the disk thread is BUFFERS behind
        nbytes = sum(len(p) if isinstance(p, bytes) else p.size for p in parts)
        length = len(self._tail) + nbytes
        if length > len(buffer):  # a batch larger than planned (a wider schema)
            buffer = mmap.mmap(-1, _round_up(length))
        target = np.frombuffer(buffer, dtype=np.uint8)
        target[: len(self._tail)] = np.frombuffer(self._tail, dtype=np.uint8)
        at = len(self._tail)
        for part in parts:  # numpy copies without holding the GIL
            source = np.frombuffer(part, dtype=np.uint8)
            target[at : at + len(source)] = source
            at += len(source)
        del target, parts
        if not batch.still_valid():
            self._free.put(buffer)
            self._lose(f"batch {seq} was overwritten in the ring while being copied")
            return
        offset = self._pos - len(self._tail)
        self._writes.put(_Write(buffer, offset, length, seq, nbytes))
        self._pos += nbytes
        keep = (self._pos // BLOCK) * BLOCK - offset
        self._tail = buffer[keep:length]
        if self._pos >= self._rotate_bytes:
            self._finish_file()

    def _write_loop(self) -> None:
        while (write := self._writes.get()) is not None:
            try:
                if self._failed:  # dropped: the copying thread goes on from the error
                    self._update(lost=1)
                else:
                    self._write(write)
            except OSError as exc:
                self._failed = True
                self._disk_failed(exc)
            except Exception:  # a bug must not stop writing the batches after it
                log.exception("writing batch %d of %s failed", write.seq, self.stream)
                self._failed = True
                self._update(lost=1)
            finally:
                self._free.put(write.buffer)
                self._writes.task_done()
        self._writes.task_done()

    def _write(self, write: _Write) -> None:
        assert self._fd is not None
        view = memoryview(write.buffer)
        try:
            if self._direct_fd is not None:
                # Whole blocks: the last one ends in zeros, which readers of the stream
                # take for its end (a zero length) until the next batch overwrites them.
                padded = _round_up(write.length)
                view[write.length : padded] = bytes(padded - write.length)
                _pwrite_all(self._direct_fd, view[:padded], write.offset)
            else:
                _pwrite_all(self._fd, view[: write.length], write.offset)
        finally:
            view.release()
        end = write.offset + write.length
        if self._direct_fd is None and end - self._synced >= self._sync_bytes:
            os.fdatasync(self._fd)
            # Clean pages are dropped so the page cache does not fill with data we will not read.
            os.posix_fadvise(self._fd, 0, end, os.POSIX_FADV_DONTNEED)
            self._synced = end
        self._written = end
        if self.status.error is not None:
            log.warning("persisting %s works again (%s)", self.stream, self.status.file)
        with self._status_lock:
            self.status = replace(
                self.status,
                batches=self.status.batches + 1,
                bytes=self.status.bytes + write.nbytes,
                last_seq=write.seq,
                error=None,
            )

    def _open_next_file(self) -> None:
        self._access.make_dirs(self._directory)
        existing = persisted_files(self._directory)
        number = (part_number(existing[-1]) or 0) + 1 if existing else 1
        path = live_path(self._directory, number)
        # Locked before it has its name: recovery never mistakes it for a dead daemon's.
        tmp = self._directory / f".{path.name}.{os.getpid()}.tmp"
        fd = self._access.create_file(tmp, os.O_RDWR | os.O_EXCL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _pwrite_all(fd, memoryview(self._header), 0)
            os.rename(tmp, path)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        if self._direct:
            with contextlib.suppress(OSError):  # EINVAL: this file system has no O_DIRECT
                self._direct_fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        self._fd, self._pos = fd, len(self._header)
        self._written, self._synced, self._failed = self._pos, 0, False
        self._tail = self._header[(self._pos // BLOCK) * BLOCK :]
        self._update(file=path)

    def _rewind(self) -> None:
        """After a failed write: go on from the end of the last batch written."""
        assert self._fd is not None
        self._writes.join()  # what was queued after the failure is dropped
        os.ftruncate(self._fd, self._written)  # a partly written batch goes
        self._pos = self._written
        start = (self._pos // BLOCK) * BLOCK
        self._tail = os.pread(self._fd, self._pos - start, start)
        self._failed = False

    def _finish_file(self) -> None:
        """End the current file with the end-of-stream marker, so tailers know it is done."""
        if self._fd is None:
            return
        self._writes.join()
        fd, self._fd = self._fd, None
        path = self.status.file
        try:
            os.ftruncate(fd, self._written)  # drop a partial batch left by a failed write
            _pwrite_all(fd, memoryview(EOS_MARKER), self._written)
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            self._disk_failed(exc)
        finally:
            os.close(fd)  # and with it the lock: the segment is closed
            if self._direct_fd is not None:
                os.close(self._direct_fd)
                self._direct_fd = None
        self._update(file=None)
        if path is not None and self._on_closed is not None:
            self._on_closed(path)

    def _disk_failed(self, exc: OSError) -> None:
        message = (
            f"cannot persist stream {self.stream!r} to {self._directory}: {exc.strerror or exc}. "
            "Acquisition goes on and the ring keeps the most recent data; free disk space or "
            "point persistence at a writable directory (retrying with every new batch)"
        )
        if self.status.error is None:
            log.error("%s", message)
        self._update(error=message, lost=1)

    def _lose(self, why: str) -> None:
        if self.status.lost == 0 or self.status.lost % 1000 == 0:
            log.warning(
                "persisting %s fell behind: %s (%d lost so far); the disk is slower than "
                "acquisition: use a faster disk or give the ring more retention",
                self.stream,
                why,
                self.status.lost + 1,
            )
        self._update(lost=1)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


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
