"""The byte layout of a ring file, shared by the writer and every reader.

A ring file is self-describing so that a process that knows nothing but the path can read
it: a header of little-endian 8-byte words, a slot index, the stream's Arrow schema, then
page-aligned slots. Each slot holds one complete Arrow IPC stream (schema message, batch
message, end-of-stream marker), so a slot can be parsed alone and its batch message can be
appended unchanged to a ``.arrows`` file.

Concurrency is a seqlock per slot: the index word ``lock`` is ``2*seq + 1`` while batch
``seq`` is being written and ``2*seq`` once it is complete. A reader reads the word, uses
the slot, reads the word again, and trusts what it saw only if both reads are equal and
even. x86-64 keeps stores in order and loads in order, and 8-byte aligned words are read
and written whole, which is all this protocol needs from the hardware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

MAGIC = int.from_bytes(b"LABDRNG1", "little")
VERSION = 1
PAGE = 4096
WORD = 8

# Header words.
H_MAGIC = 0
H_VERSION = 1
H_SLOT_COUNT = 2
H_SLOT_SIZE = 3
H_WRITE_SEQ = 4  # seq of the newest complete batch; readers futex-wait on its low 32 bits
H_WRITER_PID = 5
H_HEARTBEAT_NS = 6  # CLOCK_MONOTONIC, system-wide on Linux
H_SCHEMA_OFFSET = 7
H_SCHEMA_LENGTH = 8
H_INDEX_OFFSET = 9
H_SLOTS_OFFSET = 10
H_STATE = 11  # STATE_OPEN while the writer runs, STATE_CLOSED after a clean close
H_RETENTION_MS = 12  # the time span the ring was sized for
H_KIND = 13  # index into KINDS
HEADER_WORDS = 16

STATE_OPEN = 1
STATE_CLOSED = 2

KINDS = ("readings", "frames", "results", "parameters")

# Slot index: one 64-byte entry (a cache line) per slot.
I_LOCK = 0  # 2*seq stable, 2*seq + 1 being written, 0 never written
I_NBYTES = 1  # length of the IPC stream in the slot
I_FIRST_TS = 2  # float64 bits: smallest `timestamp` in the batch
I_LAST_TS = 3  # float64 bits: largest `timestamp`
I_ROWS = 4
I_WRITTEN_NS = 5  # CLOCK_MONOTONIC when the batch became visible
INDEX_WORDS = 8

RING_SUFFIX = ".ring"
EOS_MARKER = b"\xff\xff\xff\xff\x00\x00\x00\x00"
SEQ_METADATA_KEY = "labd.seq"


def page_round(n: int) -> int:
    return -(-n // PAGE) * PAGE


@dataclass(frozen=True)
class Layout:
    """Where everything lies in a ring file with ``slot_count`` slots of ``slot_size``."""

    slot_count: int
    slot_size: int
    schema_length: int

    @property
    def index_offset(self) -> int:
        return HEADER_WORDS * WORD

    @property
    def schema_offset(self) -> int:
        return self.index_offset + self.slot_count * INDEX_WORDS * WORD

    @property
    def slots_offset(self) -> int:
        return page_round(self.schema_offset + self.schema_length)

    @property
    def file_size(self) -> int:
        return self.slots_offset + self.slot_count * self.slot_size

    def slot_offset(self, seq: int) -> int:
        return self.slots_offset + (seq % self.slot_count) * self.slot_size

    def index_word(self, seq: int, field: int) -> int:
        """The position (in words, from the file start) of ``field`` of the slot of ``seq``."""
        return HEADER_WORDS + (seq % self.slot_count) * INDEX_WORDS + field


_STREAM_NAME = re.compile(r"[^\x00]{1,200}")


def stream_file_name(stream: str) -> str:
    """A file name for ``stream`` (names contain "/", e.g. "camera/frames"); reversible."""
    if not _STREAM_NAME.fullmatch(stream):
        raise ValueError(
            f"stream name {stream!r} cannot name a ring: use 1 to 200 characters, no NUL"
        )
    return quote(stream, safe="") + RING_SUFFIX


def stream_from_file_name(file_name: str) -> str:
    """Inverse of :func:`stream_file_name`."""
    if not file_name.endswith(RING_SUFFIX):
        raise ValueError(f"{file_name!r} is not a ring file (they end in {RING_SUFFIX})")
    return unquote(file_name[: -len(RING_SUFFIX)])
