"""Image formation for the simulated camera: a Gaussian spot, shot noise, read noise.

Drawing 4 million fresh random numbers per frame takes ~40 ms here, far too slow for a
live stream, so the background is precomputed: one table of background pixels
(bias + background light + dark signal, with their shot noise and the read noise) a
little longer than the sensor, built when the exposure changes, and each frame copies
a slice of it starting at a random offset. Frames therefore differ from each other and
their pixels have the right statistics, at the cost of one memcpy. The spot is then drawn,
with its own Poisson noise, only on a window of ±5 σ around it.

Measured on the 2-core dev VM (``python -m drivers.sim.sensor``): a full 2048² frame takes
~1.0-1.1 ms median, 1.8-1.9× a bare copy of the same 8 MiB in the same run (0.57 ms); a
``snap()`` at 10 µs exposure takes ~1.2 ms end to end, worker thread included. The first
frame after an exposure change rebuilds the table once: 20-45 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from capabilities import Roi

#: The spot is drawn out to this many sigmas; beyond, it is below 4e-6 of its peak.
_SPOT_EXTENT = 5.0
_FULL_WELL = 65535


@dataclass(frozen=True, slots=True)
class SensorParams:
    """Everything that shapes a frame except where the spot is. Counts are photo-electrons
    (one count per electron), clipped at 65535."""

    width: int
    height: int
    bias: float
    read_noise: float
    dark_current: float
    background_rate: float
    spot_peak_rate: float
    spot_sigma: float


class Sensor:
    """Renders frames; thread-safe for one caller at a time (the camera's worker thread)."""

    def __init__(self, params: SensorParams, seed: int | None = None) -> None:
        self.params = params
        self._rng = np.random.default_rng(seed)
        pixels = params.width * params.height
        # Offsets reach past a full row and then some, so consecutive frames never line up.
        self._spare = max(pixels // 8, params.width * 64)
        self._unit_noise = self._rng.standard_normal(pixels + self._spare, dtype=np.float32)
        self._background: npt.NDArray[np.uint16] | None = None
        self._background_exposure = math.nan

    def render(
        self,
        roi: Roi,
        exposure_s: float,
        spot_x: float,
        spot_y: float,
        gain: float = 1.0,
        binning: int = 1,
    ) -> npt.NDArray[np.uint16]:
        """A frame of ``roi`` after ``exposure_s`` with the spot centred at sensor pixel
        ``(spot_x, spot_y)`` (column, row; the spot may lie partly or wholly off the ROI).

        ``binning`` b sums the photo-electrons of each b×b block into one pixel (the frame
        is ``roi.height // b`` × ``roi.width // b``, a partial block at the edge is
        dropped) with the bias counted once; ``gain`` is counts per electron. Both are
        applied to the electrons above the bias, clipped at 65535 afterwards.
        """
        background = self._background_table(exposure_s)
        n = roi.width * roi.height
        offset = int(self._rng.integers(0, background.size - n + 1))
        frame = background[offset : offset + n].reshape(roi.height, roi.width).copy()
        self._add_spot(frame, roi, exposure_s, spot_x - roi.x, spot_y - roi.y)
        if gain == 1.0 and binning == 1:
            return frame  # the fast path: one count per electron
        bias = self.params.bias
        electrons = frame.astype(np.float32) - np.float32(bias)
        if binning > 1:
            h, w = roi.height // binning, roi.width // binning
            blocks = electrons[: h * binning, : w * binning].reshape(h, binning, w, binning)
            electrons = blocks.sum(axis=(1, 3), dtype=np.float32)
        counts = electrons * np.float32(gain) + np.float32(bias + 0.5)
        np.clip(counts, 0, _FULL_WELL, out=counts)
        return counts.astype(np.uint16)

    def _background_table(self, exposure_s: float) -> npt.NDArray[np.uint16]:
        if self._background is None or exposure_s != self._background_exposure:
            p = self.params
            electrons = (p.dark_current + p.background_rate) * exposure_s
            # Shot noise of the background and read noise add in quadrature; at these levels
            # the Poisson distribution is well approximated by a Gaussian.
            sigma = math.sqrt(p.read_noise**2 + electrons)
            table = self._unit_noise * np.float32(sigma)
            table += np.float32(p.bias + electrons + 0.5)  # +0.5: round, not truncate
            np.clip(table, 0, _FULL_WELL, out=table)
            self._background = table.astype(np.uint16)
            self._background_exposure = exposure_s
        return self._background

    def _add_spot(
        self, frame: npt.NDArray[np.uint16], roi: Roi, exposure_s: float, cx: float, cy: float
    ) -> None:
        p = self.params
        reach = _SPOT_EXTENT * p.spot_sigma
        x0, x1 = max(math.floor(cx - reach), 0), min(math.ceil(cx + reach) + 1, roi.width)
        y0, y1 = max(math.floor(cy - reach), 0), min(math.ceil(cy + reach) + 1, roi.height)
        if x0 >= x1 or y0 >= y1:
            return
        # A separable Gaussian: the outer product of two 1-D profiles.
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / p.spot_sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / p.spot_sigma) ** 2)
        expected = np.outer(gy, gx) * (p.spot_peak_rate * exposure_s)
        window = frame[y0:y1, x0:x1]
        total = window + self._rng.poisson(expected)
        np.minimum(total, _FULL_WELL, out=total)
        window[...] = total


def _measure() -> None:
    """Print the time to render full frames, against a bare copy of the same size."""
    import statistics
    import time
    from collections.abc import Callable

    params = SensorParams(2048, 2048, 100.0, 2.0, 0.5, 200.0, 2e6, 12.0)
    sensor = Sensor(params, seed=1)
    roi = Roi(0, 0, 2048, 2048)
    sensor.render(roi, 0.02, 1000.0, 1000.0)  # builds the background table
    source = np.zeros(2048 * 2048, np.uint16)

    def median_of(fn: Callable[[], object], repeats: int = 51) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    floor = median_of(source.copy)
    render = median_of(lambda: sensor.render(roi, 0.02, 1000.0, 1000.0))
    t = time.perf_counter()
    sensor.render(roi, 0.03, 1000.0, 1000.0)
    rebuild = time.perf_counter() - t
    print(
        f"2048x2048 uint16 frame, median: {render * 1e3:.2f} ms = {render / floor:.2f}x a bare 8 MiB copy"
        f" ({floor * 1e3:.2f} ms); rebuild after an exposure change: {rebuild * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    _measure()
