"""The ``labd`` entry point (labd/cli/__init__.py): every subcommand is registered, and
building the parser stays cheap because each command imports what it needs when it runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from labd.cli import build_parser, report_uncaught
from labd.cli.connection import BUG, USAGE
from labd.errors import ConfigError


def test_every_subcommand_is_registered() -> None:
    help_text = build_parser().format_help()
    for command in ("serve", "demo", "ls", "move", "read", "snap", "gui", "run", "data", "drivers"):
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


def test_a_wrong_command_line_is_one_line_with_status_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labd", "run", "x.wat", "--fuel", "lots"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "labd run: argument --fuel: must be a whole number from 1 to 9223372036854775807,"
        " got 'lots' (see labd run --help)"
    ]


def test_an_unexpected_error_is_one_line_naming_the_traceback_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABD_DEBUG", raising=False)
    try:
        {}["missing"]
    except KeyError as e:
        error = e
    assert report_uncaught(error) == BUG
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("labd: internal error (a bug in labd, please report it): KeyError")
    saved = Path(re.search(r"traceback in (\S+) ", line)[1])  # type: ignore[index]
    assert "Traceback" in saved.read_text() and "test_cli.py" in saved.read_text()
    saved.unlink()
    monkeypatch.setenv("LABD_DEBUG", "1")
    with pytest.raises(KeyError):
        report_uncaught(error)


def test_a_config_error_reaching_main_is_one_line_per_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert report_uncaught(ConfigError("lab.toml:2: a: bad\nlab.toml:5: b: bad")) == USAGE
    assert capsys.readouterr().err.splitlines() == [
        "labd: lab.toml:2: a: bad",
        "labd: lab.toml:5: b: bad",
    ]
