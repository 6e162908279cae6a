"""The ``labd`` entry point (labd/cli/__init__.py): every subcommand is registered, and
building the parser stays cheap because each command imports what it needs when it runs."""

from __future__ import annotations

import subprocess
import sys

from labd.cli import build_parser


def test_every_subcommand_is_registered() -> None:
    help_text = build_parser().format_help()
    for command in ("serve", "demo", "ls", "move", "read", "snap", "gui", "run", "data"):
        assert command in help_text


def test_help_does_not_load_wasmtime_rich_or_the_daemon() -> None:
    probe = (
        "import sys, labd.cli; labd.cli.build_parser().format_help();"
        "print(sorted(m for m in ('wasmtime', 'rich', 'labd.daemon', 'dearpygui')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"


def test_run_help_lists_the_languages_it_compiles() -> None:
    from labd.scripting.compile import SUPPORTED

    run_help = subprocess.run(
        [sys.executable, "-m", "labd", "run", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "{languages}" not in run_help.stdout
    assert all(suffix in run_help.stdout for suffix in SUPPORTED)
