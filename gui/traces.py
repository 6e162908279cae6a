"""Scrolling reading plots: a bounded history per stream and min/max decimation.

A plot line costs the renderer per point (docs/architecture.md, measured facts: 100k points drew at 3 fps under
llvmpipe, 27 fps after decimation). Drawing more than two points per pixel column cannot
show more, so :func:`minmax_per_column` keeps, for each column, the lowest and highest
value in it, in time order: spikes and the envelope survive, the point count is bounded
by the plot width.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def minmax_per_column(x: Floats, y: Floats, columns: int) -> tuple[Floats, Floats]:
    """At most ``2 * columns`` points of (x, y) with each column's minimum and maximum.

    ``x`` must be sorted ascending (timestamps are). Within a column the two points keep
    their time order, so the line still reads left to right.
    """
    if columns <= 0:
        raise ValueError(f"columns must be positive, got {columns}")
    n = len(x)
    if n != len(y):
        raise ValueError(f"x and y differ in length ({n} != {len(y)})")
    if n <= 2 * columns:
        return x, y
    x0, x1 = float(x[0]), float(x[-1])
    span = x1 - x0 or 1.0
    column = np.minimum(((x - x0) / span * columns).astype(np.int64), columns - 1)
    # Start index of each non-empty column: columns are contiguous because x is sorted.
    starts = np.flatnonzero(np.diff(column, prepend=-1))
    imin = np.minimum.reduceat(y, starts)
    imax = np.maximum.reduceat(y, starts)
    # Positions of the extremes, found per column with a stable argmin/argmax trick:
    # compare each value with its column's extreme and take the first match.
    sizes = np.diff(np.append(starts, n))
    per_point_min = np.repeat(imin, sizes)
    per_point_max = np.repeat(imax, sizes)
    idx = np.arange(n)
    first_min = np.minimum.reduceat(np.where(y == per_point_min, idx, n), starts)
    first_max = np.minimum.reduceat(np.where(y == per_point_max, idx, n), starts)
    a = np.minimum(first_min, first_max)
    b = np.maximum(first_min, first_max)
    order = np.empty(2 * len(starts), dtype=np.int64)
    order[0::2] = a
    order[1::2] = b
    return x[order], y[order]


class History:
    """The last ``span_s`` seconds of one reading stream, appended batch by batch.

    Backed by one preallocated array that is compacted when full, so appends are
    amortised O(batch) and :meth:`window` returns views without copying.
    """

    def __init__(self, span_s: float = 120.0, capacity: int = 1 << 16) -> None:
        if span_s <= 0 or capacity <= 0:
            raise ValueError("span_s and capacity must be positive")
        self.span_s = span_s
        self._t = np.empty(capacity, dtype=np.float64)
        self._v = np.empty(capacity, dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, t: Floats, v: Floats) -> None:
        """Add readings (timestamps ascending, later than what is held)."""
        t = np.asarray(t, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if len(t) == 0:
            return
        if len(t) >= len(self._t):
            t, v = t[-len(self._t) // 2 :], v[-len(self._v) // 2 :]
        if self._n + len(t) > len(self._t):
            self._compact(len(t), float(t[-1]))
        self._t[self._n : self._n + len(t)] = t
        self._v[self._n : self._n + len(t)] = v
        self._n += len(t)

    def _compact(self, room: int, newest: float) -> None:
        cutoff = newest - self.span_s
        keep_from = int(np.searchsorted(self._t[: self._n], cutoff))
        # Always leave room for the incoming batch, even if that drops recent history.
        keep_from = max(keep_from, self._n + room - len(self._t))
        kept = self._n - keep_from
        self._t[:kept] = self._t[keep_from : self._n]
        self._v[:kept] = self._v[keep_from : self._n]
        self._n = kept

    def window(self, t0: float, t1: float) -> tuple[Floats, Floats]:
        """Readings with ``t0 <= t <= t1`` (views into the buffer)."""
        t = self._t[: self._n]
        i = int(np.searchsorted(t, t0, side="left"))
        j = int(np.searchsorted(t, t1, side="right"))
        return t[i:j], self._v[i:j]

    def latest(self) -> tuple[float, float] | None:
        if self._n == 0:
            return None
        return float(self._t[self._n - 1]), float(self._v[self._n - 1])
