"""The Scripts panel: pick a script file, run it on the daemon, watch its log and results.

All the work happens on the network thread (:class:`gui.network.NetworkThread`): compiling the file
(in a worker thread there — a Rust or C script takes seconds), uploading, starting the
run and following its log. The panel only holds plain values — the run's id, lines, the
outcome — and a command like Cancel is a fresh network operation that finds the run by
its id, so no Cap'n Proto object ever lives on the UI thread (docs/architecture.md, measured facts) and the
buttons keep working after a reconnect.

Widget tags start with ``scripts.`` (``scripts.path``, ``scripts.run``, ``scripts.state``,
``scripts.result.<name>``) for the test hook in :mod:`gui.actions`.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import trio

from gui.network import NetworkThread
from labd.client import Lab
from labd.client.scripts import LogEntry, RunInfo, ScriptResult, Scripts, load_module

LOG_LINES_SHOWN = 200
STATE_POLL_S = 0.2
STATE_COLOURS = {
    "queued": (150, 150, 220),
    "running": (220, 200, 80),
    "paused": (230, 150, 60),
    "succeeded": (90, 200, 90),
    "failed": (240, 70, 70),
    "cancelled": (160, 160, 160),
}
ERROR_COLOUR = (240, 70, 70)


@dataclass(frozen=True)
class RunRequest:
    """What the Run button asks for, read from the panel's fields."""

    path: Path
    name: str
    args: dict[str, str]
    grants: list[str]


def parse_fields(path: str, name: str, args: str, grants: str) -> RunRequest:
    """The panel's text fields as a request; ValueError says which field is wrong.

    ``args`` is ``KEY=VALUE`` items separated by spaces or commas; ``grants`` is grant
    specs (``stage:Movable,Stoppable meter``) separated by spaces.
    """
    if not path.strip():
        raise ValueError("choose a script file first (.wat, .wasm, .c, .rs, .zig)")
    file = Path(path.strip()).expanduser()
    parsed: dict[str, str] = {}
    for item in args.replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {item!r}: write KEY=VALUE, e.g. steps=21")
        parsed[key] = value
    return RunRequest(file, name.strip() or file.stem, parsed, grants.split())


class ScriptsPanel:
    """One script at a time: its file, arguments, grants, the run's state, log and results."""

    def __init__(self, link: NetworkThread, parent: int | str) -> None:
        self.link = link
        self.run_id: int | None = None
        self.info: RunInfo | None = None
        self.results: dict[str, float] = {}
        self._log: deque[str] = deque(maxlen=LOG_LINES_SHOWN)
        self._log_dirty = False
        self._build(parent)

    def _build(self, parent: int | str) -> None:
        # Controls and results on the left, the live log beside them: the whole panel
        # fits under a camera panel on one screen.
        with (
            dpg.collapsing_header(label="Scripts", default_open=True, parent=parent),
            dpg.group(horizontal=True),
        ):
            with dpg.group():
                with dpg.group(horizontal=True):
                    dpg.add_input_text(tag="scripts.path", hint="script file", width=330)
                    dpg.add_button(label="Open", tag="scripts.open", callback=self.open)
                dpg.add_input_text(tag="scripts.name", label="name", width=200)
                dpg.add_input_text(
                    tag="scripts.args", label="arguments", hint="steps=21 start=2", width=330
                )
                dpg.add_input_text(
                    tag="scripts.grants",
                    label="grants",
                    hint="stage:Movable meter camera",
                    width=330,
                )
                with dpg.group(horizontal=True):
                    dpg.add_button(label="Run", tag="scripts.run", callback=self.run)
                    dpg.add_button(label="Cancel", tag="scripts.cancel", callback=self.cancel)
                    dpg.add_button(label="Pause", tag="scripts.pause", callback=self.pause)
                    dpg.add_button(label="Resume", tag="scripts.resume", callback=self.resume)
                with dpg.group(horizontal=True):
                    dpg.add_text("state:")
                    dpg.add_text("no run yet", tag="scripts.state")
                with dpg.table(
                    tag="scripts.results",
                    header_row=True,
                    width=420,
                    policy=dpg.mvTable_SizingStretchProp,
                ):
                    dpg.add_table_column(label="result")
                    dpg.add_table_column(label="value")
            dpg.add_input_text(
                tag="scripts.log", multiline=True, readonly=True, width=-1, height=200
            )

    # ------------------------------------------------------------ UI thread

    def tick(self) -> None:
        """Once per frame: show new log lines (one widget update, however many came)."""
        if self._log_dirty:
            dpg.set_value("scripts.log", "\n".join(self._log))
            self._log_dirty = False

    def open(self) -> None:
        """Compile and upload the file now (Run would do it too), to see it is fine."""
        request = self._request()
        if request is None:
            return
        self._show_state(f"compiling and uploading {request.path.name} ...", None)

        async def op(lab: Lab) -> str:
            scripts = await lab.scripts()
            version = await upload(scripts, request)
            return f"{request.name} v{version} ready to run"

        self.link.submit(op, done=lambda text: self._show_state(text, None), failed=self._failed)

    def run(self) -> None:
        request = self._request()
        if request is None:
            return
        self._log.clear()
        self._log_dirty = True
        self._set_results({})
        self.run_id = None
        self._show_state(f"starting {request.name} ...", None)
        post = self.link.model.call_in_ui

        async def op(lab: Lab) -> tuple[RunInfo, list[ScriptResult]]:
            scripts = await lab.scripts()
            version = await upload(scripts, request)
            run = await scripts.run(
                request.name, version=version, args=request.args, grants=request.grants
            )
            info = await run.info()
            post(lambda: self._started(info))

            async def show_state() -> None:  # queued → running → paused ... as it happens
                while True:
                    await trio.sleep(STATE_POLL_S)
                    post(functools.partial(self._show_info, await run.info()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(show_state)
                async with run.log() as lines:
                    async for line in lines:
                        post(functools.partial(self._add_line, line))
                nursery.cancel_scope.cancel()
            final = lines.final or await run.info()
            return final, await run.results()

        self.link.submit(op, done=self._finished, failed=self._failed)

    def cancel(self) -> None:
        self._steer(lambda run: run.cancel())

    def pause(self) -> None:
        self._steer(lambda run: run.pause())

    def resume(self) -> None:
        self._steer(lambda run: run.resume())

    def _steer(self, action: Callable[[Any], Any]) -> None:
        run_id = self.run_id
        if run_id is None:
            self._show_state("no run to steer: press Run first", "failed")
            return

        async def op(lab: Lab) -> RunInfo:
            run = (await lab.scripts()).get_run(run_id)
            await action(run)
            await trio.sleep(0.05)  # a pause lands at the script's next checkpoint
            return await run.info()

        self.link.submit(op, done=self._show_info, failed=self._failed)

    def _request(self) -> RunRequest | None:
        try:
            return parse_fields(
                dpg.get_value("scripts.path"),
                dpg.get_value("scripts.name"),
                dpg.get_value("scripts.args"),
                dpg.get_value("scripts.grants"),
            )
        except ValueError as exc:
            self._show_state(str(exc), "failed")
            return None

    # --- results of network operations, run on the UI thread
    def _started(self, info: RunInfo) -> None:
        self.run_id = info.id
        if not dpg.get_value("scripts.name"):
            dpg.set_value("scripts.name", info.name)
        self._show_info(info)

    def _add_line(self, line: LogEntry) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(line.timestamp))
        self._log.append(f"{stamp} {line}")
        self._log_dirty = True

    def _finished(self, outcome: tuple[RunInfo, list[ScriptResult]]) -> None:
        info, results = outcome
        self._show_info(info)
        self._set_results({r.name: r.value for r in results})

    def _failed(self, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self._show_state(f"{type(exc).__name__}: {text}", "failed")

    def _show_info(self, info: RunInfo) -> None:
        self.info = info
        text = f"run {info.id}: {info.name} v{info.version} {info.state.upper()}"
        if info.error_code and info.state != "cancelled":
            text += f" [{info.error_code}] {info.error_message}"
        self._show_state(text, info.state)

    def _show_state(self, text: str, state: str | None) -> None:
        dpg.set_value("scripts.state", text)
        dpg.configure_item("scripts.state", color=STATE_COLOURS.get(state or "", (220, 220, 220)))

    def _set_results(self, results: dict[str, float]) -> None:
        self.results = results
        dpg.delete_item("scripts.results", children_only=True, slot=1)  # rows, not columns
        for name, value in results.items():
            with dpg.table_row(parent="scripts.results"):
                dpg.add_text(name)
                dpg.add_text(f"{value:.6g}", tag=f"scripts.result.{name}")


async def upload(scripts: Scripts, request: RunRequest) -> int:
    """The version of ``request.name`` holding the file's module (uploaded if it changed)."""
    module = await trio.to_thread.run_sync(load_module, request.path)
    version, _ = await scripts.install(request.name, module)
    return version
