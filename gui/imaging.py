"""Camera frame → display texture: decimate, pick contrast, histogram, colour map.

This is the per-frame CPU work of the live view, so every step is one vectorised pass
over an image already reduced to the display size:

1. :func:`decimate` strides the frame down to at most the size it is drawn at. A
   texture bigger than its widget is sampled by the GPU at the same stride anyway
   (there are no mipmaps), so this loses nothing visible and saves the upload.
2. :func:`histogram` counts intensities; integer frames use ``np.bincount`` (one pass,
   exact), float frames ``np.histogram``.
3. :func:`auto_limits` takes contrast limits at percentiles of that histogram, so auto
   contrast costs no sort.
4. :func:`to_rgba` maps intensities to colour through an 8-bit index and a colour
   lookup table, writing into a caller-owned buffer (the back texture of
   :class:`gui.textures.DoubleBufferedTexture`), so a steady stream allocates nothing
   big per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gui.colormaps import LUT_SIZE

Image = npt.NDArray[np.generic]
RGBA = npt.NDArray[np.float32]


def display_step(height: int, width: int, max_height: int, max_width: int) -> int:
    """The smallest integer stride that makes a ``height``×``width`` frame fit the box."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame has no pixels ({width}x{height})")
    if max_height <= 0 or max_width <= 0:
        raise ValueError(f"display box must be positive, got {max_width}x{max_height}")
    return max(1, math.ceil(height / max_height), math.ceil(width / max_width))


def decimate(frame: Image, max_height: int, max_width: int) -> Image:
    """A strided view of ``frame`` no larger than ``max_height``×``max_width`` (no copy)."""
    step = display_step(frame.shape[0], frame.shape[1], max_height, max_width)
    return frame[::step, ::step]


@dataclass(frozen=True)
class Histogram:
    """Counts of intensities: ``counts[i]`` values fell in ``[edges[i], edges[i+1])``."""

    counts: npt.NDArray[np.int64]
    edges: npt.NDArray[np.float64]

    def percentile(self, q: float) -> float:
        """The intensity below which ``q`` percent of the pixels lie (bin resolution)."""
        total = int(self.counts.sum())
        if total == 0:
            return float(self.edges[0])
        cumulative = np.cumsum(self.counts)
        i = int(np.searchsorted(cumulative, total * q / 100.0, side="left"))
        return float(self.edges[min(i + 1, len(self.edges) - 1)])

    def rebinned(self, bins: int) -> Histogram:
        """The same counts merged into at most ``bins`` equal groups (for drawing)."""
        n = len(self.counts)
        if n <= bins:
            return self
        group = math.ceil(n / bins)
        padded = np.zeros(group * math.ceil(n / group), dtype=np.int64)
        padded[:n] = self.counts
        counts = padded.reshape(-1, group).sum(axis=1)
        edges = np.append(self.edges[:-1:group], self.edges[-1])
        return Histogram(counts, edges[: len(counts) + 1])


def histogram(image: Image, float_bins: int = 256) -> Histogram:
    """Histogram of ``image``: one bin per integer value for integer images."""
    flat = np.asarray(image).reshape(-1) if image.flags.c_contiguous else np.ravel(image)
    if flat.size == 0:
        return Histogram(np.zeros(1, np.int64), np.array([0.0, 1.0]))
    if np.issubdtype(flat.dtype, np.unsignedinteger) and flat.dtype.itemsize <= 2:
        counts = np.bincount(flat)
        return Histogram(counts.astype(np.int64), np.arange(len(counts) + 1, dtype=np.float64))
    values = flat.astype(np.float64, copy=False)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Histogram(np.zeros(1, np.int64), np.array([0.0, 1.0]))
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(values, bins=float_bins, range=(lo, hi))
    return Histogram(counts.astype(np.int64), edges)


def auto_limits(
    hist: Histogram, low_pct: float = 0.5, high_pct: float = 99.5
) -> tuple[float, float]:
    """Contrast limits that clip ``low_pct`` % dark and ``100 - high_pct`` % bright pixels."""
    lo = hist.percentile(low_pct)
    hi = hist.percentile(high_pct)
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def intensity_index(image: Image, lo: float, hi: float) -> npt.NDArray[np.uint8]:
    """Each pixel as a colour-table row: ``lo`` → 0, ``hi`` → 255, clipped outside."""
    if not hi > lo:
        raise ValueError(f"contrast limits must satisfy low < high, got {lo:g} >= {hi:g}")
    scale = (LUT_SIZE - 1) / (hi - lo)
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        # One small table per value range, then a gather: cheaper than arithmetic per pixel.
        levels = np.arange(np.iinfo(image.dtype).max + 1, dtype=np.float32)
        table = np.clip((levels - lo) * scale, 0, LUT_SIZE - 1).astype(np.uint8)
        return table[image]
    scaled = (np.asarray(image, dtype=np.float32) - np.float32(lo)) * np.float32(scale)
    np.clip(scaled, 0, LUT_SIZE - 1, out=scaled)
    return np.nan_to_num(scaled, nan=0.0).astype(np.uint8)


def to_rgba(image: Image, lo: float, hi: float, lut: RGBA, out: RGBA | None = None) -> RGBA:
    """``image`` as an (h, w, 4) float32 RGBA array through colour table ``lut``.

    ``out`` (shape (h, w, 4) float32) is filled in place when given, so a texture buffer
    can be reused frame after frame.
    """
    index = intensity_index(image, lo, hi)
    shape = (*index.shape, 4)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"output buffer is {out.shape} {out.dtype}, need {shape} float32")
    np.take(lut, index, axis=0, out=out)
    return out


@dataclass(frozen=True)
class Rendered:
    """One frame made ready for display, plus what the panel shows beside it."""

    rgba: RGBA
    lo: float
    hi: float
    hist: Histogram
    step: int


def render(
    frame: Image,
    max_height: int,
    max_width: int,
    lut: RGBA,
    limits: tuple[float, float] | None = None,
    out: RGBA | None = None,
) -> Rendered:
    """The whole pipeline: decimate, histogram, contrast (auto unless ``limits``), colour."""
    step = display_step(frame.shape[0], frame.shape[1], max_height, max_width)
    small = frame[::step, ::step]
    hist = histogram(small)
    lo, hi = limits if limits is not None else auto_limits(hist)
    if hi <= lo:
        hi = lo + 1.0
    rgba = to_rgba(small, lo, hi, lut, out)
    return Rendered(rgba, lo, hi, hist, step)
