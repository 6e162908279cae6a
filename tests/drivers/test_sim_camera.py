"""SimCamera: noisy frames of a Gaussian spot, exposure, ROI, cooling and triggering."""

import time

import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing

from capabilities import (
    CoolerState,
    DeviceError,
    Frame,
    FrameFormat,
    InvalidRequest,
    OutOfRange,
    Roi,
    capabilities_of,
)
from drivers.registry import driver_class
from drivers.sim.camera import SimCamera
from drivers.sim.stage import SimStage

BIAS, READ_NOISE, BACKGROUND_RATE, DARK = 100.0, 2.0, 200.0, 0.5


def run_mock_clock(afn: object) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def still_camera(**params: object) -> SimCamera:
    """A camera whose spot stays put at (1024, 1024) unless told otherwise."""
    return SimCamera(seed=7, drift_amplitude=0.0, **params)  # type: ignore[arg-type]


def spot_signal(data: npt.NDArray[np.generic], exposure: float) -> npt.NDArray[np.float64]:
    return data.astype(np.float64) - (BIAS + (BACKGROUND_RATE + DARK) * exposure)


def centroid(signal: npt.NDArray[np.float64]) -> tuple[float, float]:
    rows, cols = np.indices(signal.shape)
    total = signal.sum()
    return float((cols * signal).sum() / total), float((rows * signal).sum() / total)


def spot_centre(frame: Frame) -> tuple[float, float]:
    """The spot's centroid in ROI pixels, from the pixels above 5 % of the brightest
    (so background noise far away does not pull it towards the middle of the frame)."""
    signal = spot_signal(frame.data, frame.exposure_s)
    return centroid(np.where(signal > 0.05 * signal.max(), signal, 0.0))


def test_registry_name_and_capabilities() -> None:
    assert driver_class("sim.camera") is SimCamera
    assert capabilities_of(SimCamera()) == [
        "Triggerable",
        "FrameProducer",
        "ExposureControl",
        "RoiSelectable",
        "Cooled",
        "FaultInjectable",
        "Configurable",
    ]


def test_full_frame_shape_dtype_and_increasing_seq() -> None:
    async def main() -> None:
        camera = still_camera()
        await camera.open()
        assert await camera.sensor_size() == (2048, 2048)
        assert await camera.frame_format() == FrameFormat(2048, 2048, "uint16")
        frames = [await camera.snap() for _ in range(3)]
        assert [f.seq for f in frames] == [1, 2, 3]
        assert frames[0].data.shape == (2048, 2048) and frames[0].data.dtype == np.uint16
        assert frames[0].roi == Roi(0, 0, 2048, 2048)
        assert not np.array_equal(frames[0].data, frames[1].data)  # fresh noise every frame

    run_mock_clock(main)


def test_background_has_bias_shot_noise_and_read_noise() -> None:
    async def main() -> None:
        camera = still_camera(exposure=0.5)
        await camera.open()
        frame = await camera.snap()
        corner = frame.data[:512, :512].astype(np.float64)  # far from the spot
        electrons = (BACKGROUND_RATE + DARK) * 0.5
        assert corner.mean() == pytest.approx(BIAS + electrons, abs=0.1)
        assert corner.std() == pytest.approx(np.sqrt(READ_NOISE**2 + electrons), rel=0.02)

    run_mock_clock(main)


def test_spot_location_and_its_shot_noise() -> None:
    async def main() -> None:
        camera = still_camera(spot_x=700.0, spot_y=1300.5, exposure=0.01)
        await camera.open()
        a, b = (await camera.snap()).data, (await camera.snap()).data
        window = np.s_[1300 - 60 : 1300 + 61, 700 - 60 : 700 + 61]
        x, y = centroid(spot_signal(a[window], 0.01))
        assert (700 - 60 + x, 1300 - 60 + y) == pytest.approx((700.0, 1300.5), abs=0.1)
        # Poisson: the variance of a pixel equals its mean, so var(a - b) = 2 · mean.
        core = np.s_[1290:1311, 690:711]
        diff = a[core].astype(np.float64) - b[core].astype(np.float64)
        mean_signal = spot_signal(a[core], 0.01).mean()
        assert diff.var() / 2 == pytest.approx(mean_signal, rel=0.2)

    run_mock_clock(main)


def test_intensity_scales_with_exposure_and_saturates() -> None:
    async def main() -> None:
        camera = still_camera()
        await camera.open()
        window = np.s_[964:1085, 964:1085]
        sums = {}
        for exposure in (0.004, 0.008):
            await camera.set_exposure(exposure)
            assert await camera.exposure() == exposure
            frame = await camera.snap()
            assert frame.exposure_s == exposure
            sums[exposure] = spot_signal(frame.data[window], exposure).sum()
        assert sums[0.008] / sums[0.004] == pytest.approx(2.0, rel=0.01)
        await camera.set_exposure(0.1)  # peak of 2e5 electrons: far beyond full well
        saturated = (await camera.snap()).data
        assert saturated.max() == 65535
        assert (saturated == 65535).sum() > 100
        with pytest.raises(OutOfRange, match="exposure"):
            await camera.set_exposure(0.0)

    run_mock_clock(main)


def test_snap_takes_the_exposure_time() -> None:
    async def main() -> None:
        camera = still_camera()
        await camera.open()
        await camera.set_exposure(0.25)
        start = trio.current_time()
        await camera.snap()
        assert trio.current_time() - start == pytest.approx(0.25)

    run_mock_clock(main)


def test_snap_in_real_time_is_about_the_exposure() -> None:
    async def main() -> None:
        camera = still_camera(exposure=0.1)
        await camera.open()
        await camera.snap()  # the first frame after an exposure change builds the noise table
        t = time.perf_counter()
        await camera.snap()
        assert 0.1 <= time.perf_counter() - t < 0.2

    trio.run(main)


def test_roi_reads_out_a_window_in_sensor_coordinates() -> None:
    async def main() -> None:
        camera = still_camera(exposure=0.01)
        await camera.open()
        roi = Roi(x=900, y=950, width=256, height=128)
        await camera.set_roi(roi)
        assert await camera.roi() == roi
        assert await camera.frame_format() == FrameFormat(height=128, width=256, dtype="uint16")
        frame = await camera.snap()
        assert frame.data.shape == (128, 256) and frame.roi == roi
        x, y = spot_centre(frame)
        assert (x, y) == pytest.approx((124.0, 74.0), abs=0.2)

        with pytest.raises(InvalidRequest, match=r"does not fit the 2048×2048 sensor"):
            await camera.set_roi(Roi(x=2000, y=0, width=100, height=100))
        with pytest.raises(InvalidRequest):
            await camera.set_roi(Roi(x=0, y=0, width=0, height=10))
        assert await camera.roi() == roi  # a refused ROI changes nothing

    run_mock_clock(main)


def test_spot_follows_a_linked_stage() -> None:
    async def main() -> None:
        stage = SimStage(name="camera-stage", position=3.0)
        camera = still_camera(stage="camera-stage", pixels_per_mm=100.0, stage_zero=3.0)
        await stage.open()
        await camera.open()
        await camera.set_roi(Roi(800, 900, 500, 250))
        for position, expected_x in ((3.0, 1024.0), (4.5, 1174.0), (1.0, 824.0)):
            await stage.move_abs(position)
            await stage.wait_settled()
            frame = await camera.snap()
            x, _ = spot_centre(frame)
            assert 800 + x == pytest.approx(expected_x, abs=0.5)

    run_mock_clock(main)


def test_spot_drifts_slowly_when_asked_to() -> None:
    async def main() -> None:
        camera = SimCamera(seed=3, drift_amplitude=5.0, drift_period=10.0)
        await camera.open()
        await camera.set_roi(Roi(974, 974, 100, 100))
        positions = []
        for _ in range(4):
            frame = await camera.snap()
            positions.append(spot_centre(frame))
            await trio.sleep(2.5)
        xs = [x for x, _ in positions]
        assert max(xs) - min(xs) > 3.0  # it moved, by at most twice the amplitude
        assert all(abs(x - 50.0) <= 5.5 for x in xs)

    run_mock_clock(main)


def test_missing_linked_stage_is_a_device_error() -> None:
    async def main() -> None:
        camera = still_camera(stage="no-such-stage")
        await camera.open()
        with pytest.raises(DeviceError, match="'no-such-stage'"):
            await camera.snap()

    run_mock_clock(main)


def test_cooling_approaches_the_target_exponentially() -> None:
    async def main() -> None:
        camera = SimCamera(ambient=20.0, cooling_target=-10.0, cooling_time_constant=1.0)
        await camera.open()
        assert (await camera.sensor_temperature()).value == pytest.approx(20.0)
        assert (await camera.sensor_temperature()).unit == "°C"
        assert await camera.cooler_state() is CoolerState.COOLING
        await trio.sleep(1.0)
        assert (await camera.sensor_temperature()).value == pytest.approx(-10.0 + 30.0 / np.e)
        await trio.sleep(4.0)  # 30·e⁻⁵ = 0.2 °C from the target: within the 0.5 °C band
        assert await camera.cooler_state() is CoolerState.STABLE
        await camera.set_cooling_target(0.0)
        assert await camera.cooling_target() == 0.0
        assert await camera.cooler_state() is CoolerState.COOLING
        await trio.sleep(10.0)
        assert (await camera.sensor_temperature()).value == pytest.approx(0.0, abs=0.01)
        with pytest.raises(OutOfRange, match="cooling target"):
            await camera.set_cooling_target(-80.0)

    run_mock_clock(main)


def test_a_restarted_camera_finds_its_sensor_still_cold() -> None:
    async def main() -> None:
        first = SimCamera(name="cold-camera", cooling_time_constant=1.0)
        await first.open()
        await trio.sleep(10.0)
        await first.close()
        second = SimCamera(name="cold-camera", cooling_time_constant=1.0)
        await second.open()
        assert (await second.sensor_temperature()).value == pytest.approx(-10.0, abs=0.01)
        assert await second.cooler_state() is CoolerState.STABLE

    run_mock_clock(main)


def test_cooler_off_stays_at_ambient() -> None:
    async def main() -> None:
        camera = SimCamera(cooler=False, ambient=22.0)
        await camera.open()
        await trio.sleep(30.0)
        assert await camera.cooler_state() is CoolerState.OFF
        assert (await camera.sensor_temperature()).value == 22.0

    run_mock_clock(main)


def test_triggered_exposure_starts_at_the_trigger() -> None:
    async def main() -> None:
        camera = still_camera(exposure=0.5)
        await camera.open()
        with pytest.raises(InvalidRequest, match="arm"):
            await camera.trigger()
        await camera.arm()
        with pytest.raises(InvalidRequest, match="waits for trigger"):
            await camera.snap()
        await camera.trigger()
        await trio.sleep(2.0)  # the exposure ended long ago: the frame is ready at once
        before = trio.current_time()
        frame = await camera.snap()
        assert trio.current_time() == before
        assert frame.exposure_s == 0.5 and frame.seq == 1
        # Back to free-running: the next snap exposes now.
        await camera.snap()
        assert trio.current_time() - before == pytest.approx(0.5)

    run_mock_clock(main)
