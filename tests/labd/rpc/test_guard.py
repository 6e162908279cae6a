"""labd.rpc.guard: the segment tables of a real Cap'n Proto stream, however it is sliced
into reads, pass; an announcement over the cap closes the connection before pycapnp
sees it."""

from __future__ import annotations

import asyncio
import random
import struct
from typing import Any

import pytest

from labd.contract import schema
from labd.rpc.guard import FramingGuard, abort_message
from labd.rpc.limits import DEFAULT_LIMITS, KIB, MIB, Limits

_s: Any = schema.load()


class Pycapnp:
    """Stands in for pycapnp's protocol: a buffer to receive into, and what it got."""

    def __init__(self) -> None:
        self.received = bytearray()
        self._buffer = bytearray(4096)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.received += self._buffer[:nbytes]


class Transport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True


def guarded(
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[FramingGuard, Pycapnp, Transport, list[str]]:
    inner, transport, reasons = Pycapnp(), Transport(), []
    guard = FramingGuard(inner, limits, reasons.append)
    guard._transport = transport  # what connection_made would set (without pycapnp's)
    return guard, inner, transport, reasons


def feed(guard: FramingGuard, data: bytes, rng: random.Random) -> None:
    """Deliver ``data`` in reads of random sizes, as a transport does (in an asyncio loop:
    a refusing guard gives the peer a moment to read its reason)."""
    asyncio.run(_feed(guard, data, rng))


async def _feed(guard: FramingGuard, data: bytes, rng: random.Random) -> None:
    pos = 0
    while pos < len(data) and guard.refused is None:
        view = guard.get_buffer(-1)
        n = min(rng.choice([1, 3, 7, 8, 9, 100, 4096]), len(data) - pos, len(view))
        view[:n] = data[pos : pos + n]
        guard.buffer_updated(n)
        pos += n


def messages(rng: random.Random) -> bytes:
    """Real messages of one to a few segments and many sizes."""
    out = bytearray()
    for _ in range(30):
        reading = _s.Reading.new_message(value=rng.random(), timestamp=0.0)
        reading.unit = "x" * rng.choice([0, 10, 3000])
        out += reading.to_bytes()
        out += _multi_segment(rng)
    return bytes(out)


def _multi_segment(rng: random.Random) -> bytes:
    sizes = [rng.randint(0, 40) for _ in range(rng.randint(2, 6))]
    table = struct.pack(f"<I{len(sizes)}I", len(sizes) - 1, *sizes)
    table += b"\0" * (-len(table) % 8)
    return table + bytes(8 * sum(sizes))


@pytest.mark.parametrize("seed", range(20))
def test_a_real_stream_passes_whole_however_it_is_sliced(seed: int) -> None:
    rng = random.Random(seed)
    data = messages(rng)
    guard, inner, transport, reasons = guarded()
    guard.lift()
    feed(guard, data, rng)
    assert reasons == [] and not transport.closing
    assert bytes(inner.received) == data


@pytest.mark.parametrize("seed", range(5))
def test_an_oversize_announcement_is_cut_before_pycapnp_sees_it(seed: int) -> None:
    rng = random.Random(seed)
    honest = _s.Reading.new_message(unit="W").to_bytes()
    huge = struct.pack("<II", 0, 2**25)  # one segment of 2^25 words: 256 MiB
    guard, inner, transport, reasons = guarded()
    feed(guard, honest + huge + bytes(100_000), rng)
    assert transport.closing and transport.written == abort_message(reasons[0])
    assert reasons == ["sent a message of 256 MiB before unlocking; the limit is 64 KiB until"
                       " unlock or redeem"]  # fmt: skip
    assert len(inner.received) <= len(honest), "nothing of the big one reached pycapnp"


def test_a_huge_segment_table_is_cut_at_its_first_word() -> None:
    guard, inner, transport, reasons = guarded()
    feed(guard, struct.pack("<I", 2**32 - 1) + bytes(64), random.Random(0))
    assert transport.closing and "before unlocking" in reasons[0]
    assert inner.received == b""


def test_after_unlock_the_cap_is_the_authenticated_one() -> None:
    limits = Limits(message_bytes=1 * MIB)
    guard, inner, transport, reasons = guarded(limits)
    guard.lift()
    big = struct.pack("<II", 0, 100 * KIB // 8) + bytes(100 * KIB)
    feed(guard, big, random.Random(0))
    assert not transport.closing and bytes(inner.received) == big
    feed(guard, struct.pack("<II", 0, 2 * MIB // 8), random.Random(0))
    assert reasons == ["sent a message of 2 MiB; the limit is 1 MiB"]


def test_the_bytes_before_unlock_are_counted_in_all() -> None:
    guard, _, transport, reasons = guarded(Limits(pre_auth_bytes=1000))
    small = _s.Reading.new_message(unit="W").to_bytes()
    feed(guard, small * (2000 // len(small)), random.Random(0))
    assert transport.closing
    assert reasons == ["sent more than 1000 bytes before unlocking"]
