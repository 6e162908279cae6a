"""Colour maps as lookup tables: 256 RGBA rows of float32 in [0, 1].

A frame is mapped to colours by indexing one of these tables with 8-bit intensity
indices (see :func:`gui.imaging.to_rgba`), which costs one gather per pixel instead of
any per-pixel arithmetic. The perceptual maps are linear interpolations between anchor
colours sampled from matplotlib's definitions, close enough for a live view and without
a matplotlib dependency.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

LUT_SIZE = 256

# Anchors sampled at 9 evenly spaced points of matplotlib's maps (sRGB, 0..1).
_ANCHORS: dict[str, list[tuple[float, float, float]]] = {
    "gray": [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)],
    "viridis": [
        (0.267, 0.005, 0.329),
        (0.283, 0.141, 0.458),
        (0.254, 0.265, 0.530),
        (0.207, 0.372, 0.553),
        (0.164, 0.471, 0.558),
        (0.128, 0.567, 0.551),
        (0.135, 0.659, 0.518),
        (0.267, 0.749, 0.441),
        (0.478, 0.821, 0.318),
        (0.741, 0.873, 0.150),
        (0.993, 0.906, 0.144),
    ],
    "inferno": [
        (0.001, 0.000, 0.014),
        (0.106, 0.047, 0.255),
        (0.258, 0.039, 0.406),
        (0.416, 0.090, 0.433),
        (0.578, 0.148, 0.404),
        (0.735, 0.216, 0.330),
        (0.865, 0.317, 0.226),
        (0.954, 0.469, 0.099),
        (0.988, 0.645, 0.040),
        (0.964, 0.843, 0.273),
        (0.988, 0.998, 0.645),
    ],
}

#: The colour map names a user can pick, default first.
NAMES: tuple[str, ...] = ("viridis", "gray", "inferno")


def lut(name: str) -> npt.NDArray[np.float32]:
    """The (256, 4) RGBA table of colour map ``name``; raises ValueError for unknown names."""
    try:
        anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
    except KeyError:
        raise ValueError(
            f"unknown colour map {name!r}; choose one of: {', '.join(NAMES)}"
        ) from None
    at = np.linspace(0.0, 1.0, len(anchors))
    x = np.linspace(0.0, 1.0, LUT_SIZE)
    table = np.ones((LUT_SIZE, 4), dtype=np.float32)
    for channel in range(3):
        table[:, channel] = np.interp(x, at, anchors[:, channel])
    return table
