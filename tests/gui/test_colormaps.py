import numpy as np
import pytest

from gui.colormaps import LUT_SIZE, NAMES, lut


@pytest.mark.parametrize("name", NAMES)
def test_every_map_is_an_opaque_rgba_table(name):
    table = lut(name)
    assert table.shape == (LUT_SIZE, 4) and table.dtype == np.float32
    assert table.min() >= 0 and table.max() <= 1
    assert (table[:, 3] == 1).all()


def test_gray_and_viridis_run_dark_to_bright():
    for name in ("gray", "viridis", "inferno"):
        brightness = lut(name)[:, :3].sum(axis=1)
        assert brightness[-1] > brightness[0]


def test_unknown_map_names_the_choices():
    with pytest.raises(ValueError, match="viridis"):
        lut("jet")
