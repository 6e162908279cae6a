"""A scripted user for tests and demos: ``labd gui --script-actions FILE``.

FILE is a JSON list of steps run one after the other, one check per UI frame, e.g.::

    [{"wait_connected": true},
     {"set": "stage.motion.target", "value": 2.0}, {"click": "stage.motion.go"},
     {"wait_text": "thermo.state", "contains": "FAULTED", "timeout": 20},
     {"screenshot": "/tmp/shot"}, {"quit": true}]

``set`` and ``click`` go through DearPyGui itself: ``set`` writes a widget's value,
``click`` invokes the callback registered on the widget, with the arguments DearPyGui
would pass — so a step exercises exactly what a mouse click does. ``screenshot`` writes
``PATH.png`` (what a person looks at), ``PATH.npy`` (the same RGBA pixels for tests)
and ``PATH.json`` (where each live image is on screen, and the frame it shows, saved as
``PATH.<stream>.npy``, and each panel's sections and those not shown (a closed settings section); ``"rects": [TAG, ...]`` in the step adds
where those widgets are and their values).
The outcome goes to ``FILE.result.json``; a failed step ends the GUI with exit status 1.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dearpygui.dearpygui as dpg
import numpy as np

from gui.panels import CameraView, ReadingView

if TYPE_CHECKING:
    from gui.app import GuiApp

DEFAULT_TIMEOUT_S = 30.0


class StepFailed(Exception):
    pass


class ActionRunner:
    """Runs the steps of an actions file as a frame hook of :class:`gui.app.GuiApp`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            steps = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{self.path}: cannot read the actions file: {exc}") from None
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise ValueError(f"{self.path}: expected a JSON list of objects, one per step")
        self.steps: list[dict[str, Any]] = steps
        self.index = 0
        self.started = time.monotonic()
        self.exit_status: int | None = None
        self.log: list[str] = []
        self._waiting_for_shot: dict[str, Any] | None = None

    @property
    def result_path(self) -> Path:
        return self.path.with_name(self.path.name + ".result.json")

    def __call__(self, app: GuiApp) -> None:
        if self.exit_status is not None:
            return
        try:
            while self.index < len(self.steps):
                step = self.steps[self.index]
                if not self._run(app, step):
                    if time.monotonic() - self.started > float(
                        step.get("timeout", DEFAULT_TIMEOUT_S)
                    ):
                        raise StepFailed(f"timed out: {self._describe(app, step)}")
                    return
                self.log.append(f"ok {json.dumps(step)}")
                self.index += 1
                self.started = time.monotonic()
            self._finish(0, "")
        except Exception as exc:
            self._finish(1, f"step {self.index} {json.dumps(self.steps[self.index])}: {exc}")

    def _finish(self, status: int, error: str) -> None:
        self.exit_status = status
        self.result_path.write_text(
            json.dumps({"ok": status == 0, "error": error, "log": self.log}, indent=1)
        )
        dpg.stop_dearpygui()

    # One step; True when done, False to be called again next frame.
    def _run(self, app: GuiApp, step: dict[str, Any]) -> bool:
        if "sleep" in step:
            return time.monotonic() - self.started >= float(step["sleep"])
        if "wait_connected" in step:
            return app.connected and bool(app.panels)
        if "wait_disconnected" in step:
            return not app.connected
        if "set" in step:
            dpg.set_value(step["set"], step["value"])
            return True
        if "click" in step:
            click(step["click"])
            return True
        if "wait_text" in step:
            return str(step["contains"]) in str(dpg.get_value(step["wait_text"]))
        if "wait_frames" in step:
            view = find_view(app, step["wait_frames"], CameraView)
            return view.frames_shown >= int(step.get("count", 1))
        if "wait_points" in step:
            view = find_view(app, step["wait_points"], ReadingView)
            return view.plot.points >= int(step.get("min", 2))
        if "screenshot" in step:
            return self._screenshot(app, str(step["screenshot"]), step.get("rects", []))
        if "quit" in step:
            return True
        raise StepFailed(f"unknown step {step}")

    def _describe(self, app: GuiApp, step: dict[str, Any]) -> str:
        tag = step.get("wait_text")
        if tag is not None and dpg.does_item_exist(tag):
            return f"{tag} is {dpg.get_value(tag)!r}"
        said = ""
        if tag is not None:  # no such widget (yet): what its panel and section say
            parts = str(tag).split(".")
            for near in (f"{parts[0]}.error", ".".join(parts[:2]) + ".status"):
                if dpg.does_item_exist(near):
                    said += f"; {near} is {dpg.get_value(near)!r}"
        return f"connection: {app.connection}{said}"

    def _screenshot(self, app: GuiApp, base: str, extra_rects: list[str]) -> bool:
        if self._waiting_for_shot is None:
            # Hold live frames and let two frames render first: the capture reads the
            # last presented frame, which must show what is saved beside it.
            app.hold_frames = True
            self._waiting_for_shot = {"done": False, "settle_until": app.ui_frames + 2}
            return False
        shot = self._waiting_for_shot
        if "settle_until" in shot:
            if app.ui_frames < shot["settle_until"]:
                return False
            del shot["settle_until"]

            def grabbed(_sender: Any, buffer: Any) -> None:
                pixels = np.array(buffer, dtype=np.float32).reshape(
                    buffer.get_height(), buffer.get_width(), 4
                )
                np.save(base + ".npy", (pixels * 255 + 0.5).astype(np.uint8))
                shot["done"] = True

            dpg.output_frame_buffer(callback=grabbed)
            dpg.output_frame_buffer(file=base + ".png")
            layout = {}
            for view in app.views():
                if (
                    isinstance(view, CameraView)
                    and view.shown is not None
                    and view.rendered is not None
                ):
                    stream = str(view.section.stream).replace("/", "_")
                    np.save(f"{base}.{stream}.npy", np.asarray(view.shown.data))
                    x, y = dpg.get_item_rect_min(f"{view.tag}.canvas")
                    layout[view.section.stream] = {
                        "x": x, "y": y,
                        "width": view.image_size[0], "height": view.image_size[1],
                        "step": view.rendered.step, "lo": view.rendered.lo, "hi": view.rendered.hi,
                        "frame": f"{base}.{stream}.npy",
                    }  # fmt: skip
            rects = {}
            for tag in ("connection", "timetravel.text", *extra_rects):
                rects[tag] = [*dpg.get_item_rect_min(tag), *dpg.get_item_rect_size(tag)]
            for panel in app.panels.values():
                rects[f"{panel.name}.state"] = [
                    *dpg.get_item_rect_min(f"{panel.name}.state"),
                    *dpg.get_item_rect_size(f"{panel.name}.state"),
                ]
            for view in app.views():
                if isinstance(view, ReadingView):
                    plot = f"{view.tag}.plot"
                    rects[plot] = [*dpg.get_item_rect_min(plot), *dpg.get_item_rect_size(plot)]
            values = {tag: str(dpg.get_value(tag)) for tag in extra_rects}
            sections = {
                name: [section.kind for section in panel.sections]
                for name, panel in app.panels.items()
            }
            hidden = {
                name: [view.section.kind for view in panel.views if not view.visible]
                for name, panel in app.panels.items()
            }
            Path(base + ".json").write_text(
                json.dumps(
                    {
                        "images": layout,
                        "rects": rects,
                        "values": values,
                        "sections": sections,
                        "hidden": hidden,
                    },
                    indent=1,
                )
            )
            return False
        if shot["done"] and os.path.exists(base + ".png"):
            self._waiting_for_shot = None
            app.hold_frames = False
            return True
        return False


def click(tag: str) -> None:
    """Invoke ``tag``'s callback as DearPyGui does: (sender, app_data, user_data), trimmed."""
    if not dpg.does_item_exist(tag):
        raise StepFailed(f"no widget {tag!r}")
    callback = dpg.get_item_callback(tag)
    if callback is None:
        raise StepFailed(f"widget {tag!r} has no callback")
    args = (tag, dpg.get_value(tag), dpg.get_item_user_data(tag))
    params = inspect.signature(callback).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        callback(*args)
    else:
        callback(*args[: len(params)])


def find_view(app: GuiApp, tag: str, kind: type) -> Any:
    for view in app.views():
        if view.tag == tag and isinstance(view, kind):
            return view
    raise StepFailed(f"no {kind.__name__} {tag!r}; have: {[v.tag for v in app.views()]}")
