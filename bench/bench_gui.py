"""GUI live-view benchmark: displayed frames per second and per-frame conversion cost.

Run: ``.venv/bin/python bench/bench_gui.py`` (re-runs itself under ``xvfb-run`` when there
is no $DISPLAY). A 2048×2048 uint16 stream is pushed through the GUI's own render
pipeline (:func:`gui.imaging.render` into a :class:`gui.textures.DoubleBufferedTexture`)
as fast as the window renders, with a new frame every UI frame. Floors, measured in
the same run: for conversion, a plain numpy copy of the frame; for frame rate, the same
window rendering with no texture update. The full-resolution path (a 2048² texture
uploaded every frame, no decimation) is shown for comparison.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZE = 2048
SECONDS = 4.0


def main() -> None:
    if not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            raise SystemExit(
                "no $DISPLAY and no xvfb-run: apt-get install xvfb xauth libgl1-mesa-dri"
            )
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv]
        raise SystemExit(subprocess.call(cmd))

    import dearpygui.dearpygui as dpg
    import numpy as np

    from gui.colormaps import lut
    from gui.imaging import render
    from gui.textures import DoubleBufferedTexture

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 4096, (SIZE, SIZE), dtype=np.uint16) for _ in range(4)]
    table = lut("viridis")

    # --- CPU cost per frame: the pipeline vs a plain copy of the frame
    dst = np.empty_like(frames[0])
    out = np.empty((512, 512, 4), np.float32)

    def median_ms(fn, repeats: int = 40) -> float:
        times = []
        for i in range(repeats):
            frame = frames[i % len(frames)]
            t0 = time.perf_counter()
            fn(frame)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    copy_ms = median_ms(lambda f: np.copyto(dst, f))
    convert_ms = median_ms(lambda f: render(f, 512, 512, table, out=out))
    full = np.empty((SIZE, SIZE, 4), np.float32)
    convert_full_ms = median_ms(lambda f: render(f, SIZE, SIZE, table, out=full), repeats=10)

    # --- frames displayed per second under Xvfb (llvmpipe)
    dpg.create_context()
    registry = dpg.add_texture_registry()
    with dpg.window(tag="main"), dpg.drawlist(520, 520, tag="canvas"):
        pass
    dpg.create_viewport(title="bench", width=1600, height=1000)
    dpg.setup_dearpygui()
    dpg.show_viewport()
    dpg.set_primary_window("main", True)

    def fps(update) -> float:
        for _ in range(10):
            dpg.render_dearpygui_frame()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < SECONDS:
            update(n)
            dpg.render_dearpygui_frame()
            n += 1
        return n / (time.perf_counter() - t0)

    floor_fps = fps(lambda n: None)

    def pipeline(box: int):
        texture = DoubleBufferedTexture(registry, min(box, SIZE), min(box, SIZE))
        tag = dpg.draw_image(texture.front_tag, (0, 0), (512, 512), parent="canvas")

        def update(n: int) -> None:
            render(frames[n % len(frames)], box, box, table, out=texture.back_buffer)
            texture.show(tag)

        return update

    live_fps = fps(pipeline(512))
    dpg.delete_item("canvas", children_only=True)
    full_fps = fps(pipeline(SIZE))
    dpg.destroy_context()

    print(f"GUI live view, {SIZE}x{SIZE} uint16 frames, viridis, auto contrast + histogram")
    print(
        f"  conversion per frame (decimated to 512²): {convert_ms:6.2f} ms = "
        f"{convert_ms / copy_ms:5.2f}x a numpy copy of the frame ({copy_ms:.2f} ms)"
    )
    print(
        f"  conversion per frame at full resolution : {convert_full_ms:6.2f} ms = "
        f"{convert_full_ms / copy_ms:5.2f}x the copy"
    )
    print(
        f"  frames displayed per second (decimated) : {live_fps:6.1f} fps = "
        f"{live_fps / floor_fps:5.2f}x the empty render loop ({floor_fps:.1f} fps)"
    )
    print(
        f"  frames displayed per second (full 2048²): {full_fps:6.1f} fps = "
        f"{full_fps / floor_fps:5.2f}x the empty render loop"
    )
    sys.stdout.flush()
    # DearPyGui may abort in interpreter shutdown (docs/architecture.md, measured facts).
    os._exit(0)


if __name__ == "__main__":
    main()
