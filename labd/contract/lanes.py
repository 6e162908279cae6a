"""The client's end of a shared-memory lane: the file a push names, mapped and copied out.

How lanes work and why: :mod:`labd.rpc.lanes` (the daemon's end).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pyarrow as pa

LANE_DIR = Path("/dev/shm")
LANE_NAME = re.compile(r"labd-lane-[0-9]+-[0-9a-f]{32}")
"""A lane file's name: ``labd-lane-<daemon pid>-<random hex>``."""
LANE_UNAVAILABLE = "lane-unavailable"
"""The error code a client answers a push with when it cannot map the lane."""


class LaneReader:
    """The client's end: the lanes a subscription was told about, mapped read-only."""

    def __init__(self) -> None:
        self._maps: dict[str, pa.MemoryMappedFile] = {}

    def read(self, path: str, offset: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``offset`` of the lane at ``path``.

        Raises OSError if the lane cannot be mapped (another machine, another user).
        """
        mapped = self._maps.get(path)
        if mapped is None:
            # The daemon names the file and this end unlinks it: accept nothing but a lane
            # name right in LANE_DIR (no "..", no other directory).
            if Path(path).parent != LANE_DIR or not LANE_NAME.fullmatch(Path(path).name):
                raise PermissionError(f"{path} is not a labd lane; refusing to map it")
            mapped = pa.memory_map(path, "r")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # mapped now: the file needs no name any more
            self._maps[path] = mapped
        mapped.seek(offset)
        view: pa.Buffer = mapped.read_buffer(length)
        data: bytes = view.to_pybytes()  # a copy: the daemon reuses the slot once we return
        return data

    def close(self) -> None:
        for mapped in self._maps.values():
            mapped.close()
        self._maps.clear()
