"""labd.rings.access: rings and persisted files are the daemon user's, or one group's."""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from labd.records import READING_SCHEMA
from labd.rings import Persister, RingSet
from tests.labd.rings.batches import reading_batch


def mode_and_gid(path: Path) -> tuple[int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_gid


def a_group_of_ours() -> grp.struct_group:
    """A group the daemon's user may give files to, other than its primary one if it can."""
    ours = set(os.getgroups()) | {os.getgid()}
    groups = [g for g in grp.getgrall() if os.getuid() == 0 or g.gr_gid in ours]
    return next((g for g in groups if g.gr_gid != os.getgid()), grp.getgrgid(os.getgid()))


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A umask that would take the group's bits from anything not set explicitly."""
    old = os.umask(0o077)
    yield
    os.umask(old)


def persist_one_batch(ring_root: Path, data: Path, group: str | None) -> tuple[RingSet, Path]:
    rings = RingSet("lab", root=ring_root, max_bytes=64 << 20, file_group=group)
    ring = rings.open_stream(
        "meter/reading", READING_SCHEMA, "readings", expected_batch_bytes=4096,
        batches_per_second=10,
    )  # fmt: skip
    with Persister(data, "run-1", file_group=group) as persister:
        persister.follow(ring)
        ring.append(1, reading_batch(1, 10))
    return rings, ring.path


def stream_dirs(data: Path, file: Path) -> list[Path]:
    """The directories the persister made for ``file``: meter, meter/reading, its run."""
    assert file.parent == data / "meter" / "reading" / "run-1"
    return [data / "meter", data / "meter" / "reading", file.parent]


def test_everything_is_private_by_default(ring_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    rings, ring = persist_one_batch(ring_root, data, None)
    with rings:
        files = list(data.rglob("part-*"))
        assert [f.name for f in files] == ["part-000001.parquet"]  # finalized at close
        for path in [ring, *files]:
            assert mode_and_gid(path)[0] == 0o600, path
        for path in [ring.parent, data.parent, data, *stream_dirs(data, files[0])]:
            assert mode_and_gid(path)[0] == 0o700, path


def test_a_group_can_read_rings_and_files(
    ring_root: Path, tmp_path: Path, strict_umask: None
) -> None:
    group = a_group_of_ours()
    data = tmp_path / "data"
    rings, ring = persist_one_batch(ring_root, data, group.gr_name)
    with rings:
        files = list(data.rglob("part-*"))
        assert [f.name for f in files] == ["part-000001.parquet"]
        for path in [ring, *files]:
            assert mode_and_gid(path) == (0o640, group.gr_gid), path
        for path in [ring_root, ring.parent, data, *stream_dirs(data, files[0])]:
            assert mode_and_gid(path) == (0o750, group.gr_gid), path


def test_an_unknown_group_is_refused_with_what_to_do(ring_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'no-such-group' does not exist.*/etc/group"):
        RingSet("lab", root=ring_root, file_group="no-such-group")
    with pytest.raises(ValueError, match="does not exist"):
        Persister(tmp_path, "run-1", file_group="no-such-group")
