"""Start the GUI: model, network thread, window, loop — and leave without a trace."""

from __future__ import annotations

import logging
import os
import sys

import dearpygui.dearpygui as dpg

from gui.actions import ActionRunner
from gui.app import GuiApp
from gui.model import LabModel
from gui.network import NetworkThread

log = logging.getLogger("labd.gui")


def run_gui(
    address: str | None,
    *,
    token: str | None = None,
    tls_ca: str | None = None,
    actions: str | None = None,
    title: str = "labd",
    local_rings: bool = True,
) -> int:
    """Run the GUI until its window closes (or the actions file ends); the exit status.

    The caller must end the process with :func:`hard_exit` once it has cleaned up.
    """
    runner = None
    if actions is not None:
        try:
            runner = ActionRunner(actions)
        except ValueError as exc:
            print(f"labd gui: {exc}", file=sys.stderr)
            return 2
    model = LabModel()
    link = NetworkThread(model, address, token=token, tls_ca=tls_ca)
    app = GuiApp(link, model, title=title, local_rings=local_rings)
    app.build()
    if runner is not None:
        app.frame_hooks.append(runner)
    link.start()
    status = 0
    try:
        app.run()
    except Exception:
        log.exception("the GUI failed")
        status = 1
    finally:
        app.timetravel.close()
        link.stop(timeout=2.0)
        dpg.destroy_context()
    if runner is not None and runner.exit_status:
        status = runner.exit_status
    return status


def hard_exit(status: int) -> None:
    """Leave with ``os._exit``: DearPyGui can abort in interpreter shutdown after
    ``destroy_context`` (docs/architecture.md, measured facts), and the network thread holds nothing that needs a
    clean exit (the daemon drops this connection's work by itself)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
