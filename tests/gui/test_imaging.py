import numpy as np
import pytest

from gui.colormaps import lut
from gui.imaging import (
    auto_limits,
    decimate,
    display_step,
    histogram,
    intensity_index,
    render,
    to_rgba,
)


def test_display_step_fits_the_box():
    assert display_step(2048, 2048, 512, 512) == 4
    assert display_step(2048, 2048, 500, 800) == 5  # height decides
    assert display_step(100, 100, 512, 512) == 1  # never upsampled


def test_display_step_rejects_empty_inputs():
    with pytest.raises(ValueError, match="no pixels"):
        display_step(0, 10, 5, 5)
    with pytest.raises(ValueError, match="display box"):
        display_step(10, 10, 0, 5)


def test_decimate_is_a_view_within_the_box():
    frame = np.arange(2048 * 1024, dtype=np.uint16).reshape(1024, 2048)
    small = decimate(frame, 300, 300)
    assert small.shape[0] <= 300 and small.shape[1] <= 300
    assert np.shares_memory(small, frame)
    assert small[1, 1] == frame[7, 7]  # stride 7 = ceil(2048/300)


def test_integer_histogram_counts_every_value():
    image = np.array([[0, 1, 1], [5, 5, 5]], dtype=np.uint16)
    hist = histogram(image)
    assert hist.counts.tolist() == [1, 2, 0, 0, 0, 3]
    assert hist.edges[0] == 0 and hist.edges[-1] == 6


def test_float_histogram_ignores_nan():
    image = np.array([0.0, 1.0, np.nan, 2.0])
    hist = histogram(image, float_bins=4)
    assert hist.counts.sum() == 3


def test_rebinned_keeps_the_total():
    hist = histogram(np.arange(1000, dtype=np.uint16))
    small = hist.rebinned(64)
    assert len(small.counts) <= 64
    assert small.counts.sum() == 1000
    assert len(small.edges) == len(small.counts) + 1


def test_auto_limits_clip_outliers():
    rng = np.random.default_rng(0)
    image = rng.integers(100, 200, size=(256, 256)).astype(np.uint16)
    image[0, 0] = 60000  # a hot pixel must not set the white level
    lo, hi = auto_limits(histogram(image))
    assert 100 <= lo < 110
    assert 190 < hi <= 201


def test_intensity_index_maps_limits_to_the_table_ends():
    image = np.array([[0, 100, 150, 200, 65535]], dtype=np.uint16)
    index = intensity_index(image, 100, 200)
    assert index.tolist() == [[0, 0, 127, 255, 255]]
    floats = intensity_index(image.astype(np.float32), 100, 200)
    assert floats.tolist() == index.tolist()


def test_intensity_index_rejects_inverted_limits():
    with pytest.raises(ValueError, match="low < high"):
        intensity_index(np.zeros((2, 2), np.uint16), 5, 5)


def test_to_rgba_fills_the_given_buffer():
    table = lut("gray")
    image = np.array([[0, 255]], dtype=np.uint8)
    out = np.zeros((1, 2, 4), np.float32)
    result = to_rgba(image, 0, 255, table, out)
    assert result is out
    assert out[0, 0].tolist() == [0, 0, 0, 1]
    assert out[0, 1].tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="need"):
        to_rgba(image, 0, 255, table, np.zeros((2, 2, 4), np.float32))


def test_render_runs_the_whole_pipeline():
    frame = np.zeros((2048, 2048), np.uint16)
    frame[1000:1100, 1000:1100] = 4000  # a bright square on a dark field
    shown = render(frame, 512, 512, lut("gray"))
    assert shown.rgba.shape == (512, 512, 4)
    assert shown.step == 4
    assert shown.rgba[262, 262, 0] == 1.0  # inside the square: white
    assert shown.rgba[10, 10, 0] == 0.0
    manual = render(frame, 512, 512, lut("gray"), limits=(0, 8000))
    assert manual.rgba[262, 262, 0] == pytest.approx(127 / 255)
