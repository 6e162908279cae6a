"""Keep the data directory within its disk quota: the oldest closed files go first.

Persistence is on by default (docs/live-data.md, "Where the files go"), so without a
bound a camera would fill the disk in hours. Every few seconds the daemon's retention
task measures what the data directory holds and, while that is over the quota (or the
disk's free space is below :func:`free_reserve`), removes the oldest closed file from
:func:`labd.rings.closed_files`, logging each removal in one line: which file, how big,
why. Never removed: a segment being written (it is locked), and any file of a run that
another live daemon holds (several daemons may share a data directory: each one removes
only its own run's files and those of daemons that are gone). A daemon shows it is live
with a lock on ``<data_dir>/.live/<run_id>.lock``, held while it runs.

The work (walking, ``stat``, ``unlink`` of possibly many files) runs in a worker thread:
nothing of it blocks the daemon's loop (docs/architecture.md, "Concurrency").
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import trio

from labd.rings.access import FileAccess
from labd.rings.files import closed_files, is_live, is_locked
from labd.rings.sizing import fmt_bytes

log = logging.getLogger(__name__)

DEFAULT_QUOTA_SHARE = 0.10
"""The default quota: this share of the size of the data directory's filesystem."""
FREE_RESERVE_SHARE = 0.05
FREE_RESERVE_CAP = 5 << 30
"""Whatever the quota, this much of the disk stays free (a share of its size, capped)."""
SWEEP_INTERVAL_S = 10.0
MAX_SEGMENT_BYTES = 1 << 30
SEGMENTS_PER_QUOTA = 16
LIVE_DIR = ".live"


def disk_size(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


def disk_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def default_quota(data_dir: Path) -> int:
    """10% of the size of the filesystem ``data_dir`` is on."""
    return int(disk_size(data_dir) * DEFAULT_QUOTA_SHARE)


def free_reserve(data_dir: Path) -> int:
    """What retention keeps free on the disk of ``data_dir``: 5% of it, at most 5 GiB."""
    return int(min(disk_size(data_dir) * FREE_RESERVE_SHARE, FREE_RESERVE_CAP))


def segment_bytes(quota: int) -> int:
    """The size at which segments rotate: 1 GiB, or a sixteenth of a smaller quota, so that
    the open segments (which retention cannot remove) are a small part of what it holds."""
    return max(1, min(MAX_SEGMENT_BYTES, quota // SEGMENTS_PER_QUOTA))


def _allocated(path: Path) -> int:
    """The disk space a file takes (``du``'s measure: blocks, not its length)."""
    return path.stat().st_blocks * 512


def used_bytes(data_dir: Path) -> int:
    """The disk space of every file under ``data_dir``."""
    total = 0
    for root, _dirs, names in os.walk(data_dir):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                total += _allocated(Path(root, name))
    return total


@dataclass(frozen=True)
class Removed:
    path: Path
    bytes: int
    why: str


class Retention:
    """The quota of one daemon's data directory, and the lock that marks its run live.

    ``quota`` None: :func:`default_quota`. :meth:`sweep` removes what is over it (blocking:
    call it from a thread); :meth:`run` does that periodically in a Trio task.
    """

    def __init__(
        self,
        data_dir: Path,
        run_id: str,
        *,
        quota: int | None = None,
        access: FileAccess | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.run_id = run_id
        self._access = access or FileAccess()
        self._access.make_dirs(self.data_dir)
        self.quota = default_quota(self.data_dir) if quota is None else quota
        self.used = 0
        """What the data directory held at the last sweep (bytes on disk)."""
        self._over = False  # said once that nothing more could be removed
        self._lock_path = self.data_dir / LIVE_DIR / f"{run_id}.lock"
        self._lock_fd: int | None = self._create_lock()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _create_lock(self) -> int:
        for _ in range(3):  # another daemon may remove the empty directory meanwhile
            self._access.make_dirs(self._lock_path.parent)
            with contextlib.suppress(FileNotFoundError):
                return self._access.create_file(self._lock_path, os.O_WRONLY)
        return self._access.create_file(self._lock_path, os.O_WRONLY)

    def close(self) -> None:
        """Release this run: other daemons' retention may now remove its files."""
        if self._lock_fd is not None:
            self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
            with contextlib.suppress(OSError):  # not empty: other daemons run
                self._lock_path.parent.rmdir()

    def __enter__(self) -> Retention:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def run(
        self,
        interval_s: float = SWEEP_INTERVAL_S,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Sweep now, then every ``interval_s``, each sweep in a worker thread."""
        task_status.started()
        while True:
            try:
                await trio.to_thread.run_sync(self.sweep)
            except OSError as exc:  # an unreadable directory: said, tried again later
                log.error("retention of %s failed: %s", self.data_dir, exc)
            await trio.sleep(interval_s)

    def live_runs(self) -> set[str]:
        """The runs other live daemons hold; lock files of daemons that are gone are removed."""
        live = set()
        with os.scandir(self._lock_path.parent) as entries:
            for entry in entries:
                run, suffix = os.path.splitext(entry.name)
                if suffix != ".lock" or run == self.run_id:
                    continue
                if is_locked(Path(entry.path)):
                    live.add(run)
                else:
                    Path(entry.path).unlink(missing_ok=True)
        return live

    def sweep(self) -> list[Removed]:
        """Remove the oldest closed files until the data directory is within its quota and
        the disk keeps its free reserve; returns what was removed."""
        self.used = used_bytes(self.data_dir)
        reserve = free_reserve(self.data_dir)
        free = disk_free(self.data_dir)
        if self.used <= self.quota and free >= reserve:
            self._over = False
            return []
        others = self.live_runs()
        removed: list[Removed] = []
        for path in closed_files(self.data_dir):
            over_quota = self.used > self.quota
            if not over_quota and free >= reserve:
                break
            run = path.parent.name
            if run in others or (is_live(path) and (run == self.run_id or is_locked(path))):
                continue  # another daemon's run; a segment of ours waiting to be finalized
            try:
                size = _allocated(path)
                path.unlink()
            except FileNotFoundError:
                continue
            why = (
                f"the data directory held {fmt_bytes(self.used)}, over its quota of"
                f" {fmt_bytes(self.quota)}"
                if over_quota
                else f"the disk had {fmt_bytes(free)} free, less than the {fmt_bytes(reserve)}"
                " kept free"
            )
            log.info(
                "retention: removed %s (%s, the oldest closed file): %s", path, fmt_bytes(size), why
            )
            removed.append(Removed(path, size, why))
            self.used -= size
            free += size
            if run != self.run_id and run not in others:
                with contextlib.suppress(OSError):  # not empty: more of that run is left
                    path.parent.rmdir()
        if (self.used > self.quota or free < reserve) and not self._over:
            log.warning(
                "the data directory %s holds %s (quota %s, %s free on its disk) and nothing"
                " more can be removed: the rest is segments being written and runs of other"
                " live daemons",
                self.data_dir,
                fmt_bytes(self.used),
                fmt_bytes(self.quota),
                fmt_bytes(free),
            )
            self._over = True
        return removed
