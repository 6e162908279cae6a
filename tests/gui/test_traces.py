import numpy as np
import pytest

from gui.traces import History, minmax_per_column


def test_short_series_pass_through():
    x = np.arange(10.0)
    y = np.sin(x)
    dx, dy = minmax_per_column(x, y, 10)
    assert dx is x and dy is y


def test_decimation_bounds_points_and_keeps_extremes():
    x = np.linspace(0, 1, 100_000)
    y = np.sin(x * 50)
    y[31_337] = 5.0  # a one-sample spike must survive
    y[77_777] = -5.0
    dx, dy = minmax_per_column(x, y, 400)
    assert len(dx) <= 800
    assert dy.max() == 5.0 and dy.min() == -5.0
    assert np.all(np.diff(dx) >= 0)  # still in time order
    # every column's envelope is kept
    column = np.minimum((x * 400).astype(int), 399)
    for c in (0, 123, 399):
        inside = column == c
        kept = (dx >= x[inside][0]) & (dx <= x[inside][-1])
        assert dy[kept].max() == y[inside].max()
        assert dy[kept].min() == y[inside].min()


def test_decimation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        minmax_per_column(np.zeros(3), np.zeros(3), 0)
    with pytest.raises(ValueError, match="length"):
        minmax_per_column(np.zeros(3), np.zeros(2), 1)


def test_history_keeps_the_span_and_windows():
    h = History(span_s=10.0, capacity=100)
    for start in range(0, 60, 5):
        t = np.arange(start, start + 5, dtype=float)
        h.append(t, t * 2)
    assert len(h) <= 100
    assert h.latest() == (59.0, 118.0)
    t, v = h.window(50, 55)
    assert t.tolist() == [50, 51, 52, 53, 54, 55]
    assert (v == t * 2).all()


def test_history_survives_batches_larger_than_capacity():
    h = History(span_s=1e9, capacity=16)
    h.append(np.arange(100.0), np.arange(100.0))
    assert h.latest() == (99.0, 99.0)
    assert len(h) <= 16
