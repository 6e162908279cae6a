"""What can go wrong with rings, each error saying what to change."""

from __future__ import annotations

from labd.errors import LabdError


class RingError(LabdError):
    code = "ring-error"


class RingSizeError(RingError):
    """The ring asked for does not fit in the memory allowed for rings."""

    code = "ring-size"


class BatchTooLarge(RingError, ValueError):
    """A batch does not fit in one slot of its ring."""

    code = "batch-too-large"


class RingLapped(RingError):
    """The writer overwrote a batch before (or while) the reader used it.

    ``behind`` is how many batches the reader was behind the writer, ``capacity`` how many
    the ring holds: a reader that falls behind by more than ``capacity`` loses data.
    """

    code = "ring-lapped"

    def __init__(self, stream: str, seq: int, write_seq: int, capacity: int) -> None:
        self.stream = stream
        self.seq = seq
        self.write_seq = write_seq
        self.behind = write_seq - seq
        self.capacity = capacity
        super().__init__(
            f"ring {stream!r}: batch {seq} was overwritten; the writer is at batch {write_seq}, "
            f"{self.behind} ahead, and the ring holds only the last {capacity}. Read faster "
            "(copy out less, process in another process), or give the ring more retention"
        )


class RingNotFound(RingError, LookupError):
    """No ring, or more than one, matches the stream asked for; the message says which."""

    code = "ring-not-found"
