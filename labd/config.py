"""Lab configuration: a TOML file listing instruments, checked before anything starts.

A config error must be found at load time, with the file, the key (and its line) and a
hint, because a daemon that fails an hour into a run over a typo loses an hour of data.
Drivers are constructed here once, without I/O, purely to check their parameters.

Example::

    [daemon]
    retention_s = 300          # how far back the rings reach

    [instruments.stage]
    driver = "sim.stage"
    poll_hz = 10               # publish "stage/position" ten times a second
    velocity = 20.0            # everything else goes to the driver

    [instruments.meter]
    driver = "sim.power_meter"
    stage = "stage"
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from drivers.registry import DRIVERS, UnknownDriver, driver_class, parameter_names
from labd.errors import ConfigError

#: Keys of an instrument table that belong to the daemon, not to the driver.
DAEMON_KEYS = {"driver", "poll_hz", "frame_fps", "call_timeout_s"}

#: The keys of the [daemon] table.
DAEMON_TABLE_KEYS = ("retention_s", "data_dir", "ring_memory_mb")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class InstrumentSpec:
    """One instrument as configured: enough to create (and re-create) its driver."""

    name: str
    driver: str
    params: dict[str, Any] = field(default_factory=dict)
    poll_hz: float = 0.0
    """How often the daemon publishes this instrument's readings (0: never)."""
    frame_fps: float = 0.0
    """How often the daemon snaps frames for the live stream (0: only on demand)."""
    call_timeout_s: float = 10.0

    def create(self) -> object:
        """A fresh driver instance (no I/O happens until its ``open()``).

        A driver that takes a ``name`` parameter gets the instrument's name, so that what it
        reports (and, for simulators, how its siblings find it) matches the config.
        """
        cls = driver_class(self.driver)
        params = self.params
        if "name" in parameter_names(cls) and "name" not in params:
            params = {"name": self.name, **params}
        return cls(**params)


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor restarts a faulted instrument."""

    max_restarts: int = 5
    """Restarts allowed within ``window_s``; one more fault and the instrument stays faulted."""
    window_s: float = 60.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    open_timeout_s: float = 15.0
    close_timeout_s: float = 3.0


@dataclass(frozen=True)
class LabConfig:
    instruments: list[InstrumentSpec]
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    retention_s: float = 300.0
    """How far back the shared-memory rings reach."""
    data_dir: Path | None = None
    """Where the persister writes ``.arrows`` files (None: do not persist)."""
    ring_memory_bytes: int = 1 << 30
    """Shared memory all rings of the daemon may use together."""
    source: str = "<default>"


def load_config(path: str | os.PathLike[str]) -> LabConfig:
    """Read and check the lab config at ``path``; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the lab config ({e.strerror})") from None
    return parse_config(text, source=str(path), base_dir=path.parent)


def default_config() -> LabConfig:
    """The simulated lab that ships with labd (``labd demo`` and tests use it)."""
    text = resources.files("labd").joinpath("default_lab.toml").read_text()
    return parse_config(text, source="<default simulated lab>")


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> LabConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    checker = _Checker(text, source, base_dir)
    known_top = {"daemon", "restart", "instruments"}
    for key in doc:
        if key not in known_top:
            checker.fail(
                key, f"unknown section [{key}]", f"known sections: {', '.join(sorted(known_top))}"
            )
    daemon = checker.table(doc, "daemon")
    restart = checker.table(doc, "restart")
    instruments = checker.table(doc, "instruments")
    if not instruments:
        checker.fail("instruments", "no instruments configured", "add an [instruments.NAME] table")

    specs = [checker.instrument(name, table) for name, table in instruments.items()]
    policy = checker.restart_policy(restart)
    checker.known_keys("daemon", daemon, DAEMON_TABLE_KEYS)
    data_dir = daemon.get("data_dir")
    if data_dir is not None:
        data_dir = Path(os.path.expanduser(str(data_dir)))
        if base_dir is not None and not data_dir.is_absolute():
            data_dir = base_dir / data_dir
    ring_mb = checker.number("daemon.ring_memory_mb", daemon.get("ring_memory_mb", 1024))
    return LabConfig(
        instruments=specs,
        restart=policy,
        retention_s=checker.number("daemon.retention_s", daemon.get("retention_s", 300.0)),
        data_dir=data_dir,
        ring_memory_bytes=int(ring_mb * (1 << 20)),
        source=source,
    )


class _Checker:
    """Turns a problem at a key into a ConfigError naming the file, line, key and a hint."""

    def __init__(self, text: str, source: str, base_dir: Path | None) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.base_dir = base_dir

    def resolve(self, value: Any) -> Any:
        """Make a relative file path in a parameter relative to the config file.

        Two forms are paths: ``"./x"`` / ``"../x"``, and a pyvisa-sim library
        ``"<file>.yaml@sim"``. Without this a lab would work only when started from the
        folder its config lives in.
        """
        if self.base_dir is None or not isinstance(value, str):
            return value
        if value.startswith(("./", "../")):
            return str((self.base_dir / value).resolve())
        path, at, backend = value.rpartition("@")
        if at and backend == "sim" and path.endswith((".yaml", ".yml")) and not os.path.isabs(path):
            return f"{(self.base_dir / path).resolve()}@sim"
        return value

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` ("instruments.stage.velocity", "daemon.retention_s"): the
        line of the deepest table header it is under, then of the key's own line in it."""
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):
            header = self._header_line(parts[:depth])
            if header is not None:
                break
        else:
            return None
        if depth == len(parts):
            return header + 1
        leaf = re.compile(r"^\s*" + re.escape(parts[-1]) + r"\s*=")
        for i in range(header + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if leaf.match(self.lines[i]):
                return i + 1
        return header + 1

    def _header_line(self, table: list[str]) -> int | None:
        header = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(map(re.escape, table)) + r"\s*\]+")
        return next((i for i, line in enumerate(self.lines) if header.match(line)), None)

    def fail(self, key: str, problem: str, hint: str) -> NoReturn:
        line = self.line_of(key)
        where = f"{self.source}:{line}" if line else self.source
        raise ConfigError(f"{where}: {key}: {problem}. Hint: {hint}")

    def number(self, key: str, value: Any, *, positive: bool = True) -> float:
        """``value`` as a float; a ConfigError unless it is a number > 0 (or >= 0)."""
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (is_number and (value > 0 if positive else value >= 0)):
            self.fail(
                key,
                f"must be a {'positive' if positive else 'non-negative'} number, got {value!r}",
                f"for example {key.rpartition('.')[2]} = 10",
            )
        return float(value)

    def known_keys(self, table: str, values: dict[str, Any], accepted: Sequence[str]) -> None:
        unknown = sorted(set(values) - set(accepted))
        if unknown:
            self.fail(
                f"{table}.{unknown[0]}", "unknown key", f"accepted keys: {', '.join(accepted)}"
            )

    def restart_policy(self, table: dict[str, Any]) -> RestartPolicy:
        self.known_keys("restart", table, tuple(RestartPolicy.__dataclass_fields__))
        values: dict[str, Any] = {
            k: self.number(f"restart.{k}", v, positive=False) for k, v in table.items()
        }
        if "max_restarts" in values:
            if not values["max_restarts"].is_integer():
                self.fail("restart.max_restarts", "must be a whole number", "max_restarts = 5")
            values["max_restarts"] = int(values["max_restarts"])
        return RestartPolicy(**values)

    def table(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "must be a table", f"write it as [{key}]")
        return dict(value)

    def instrument(self, name: str, table: Any) -> InstrumentSpec:
        key = f"instruments.{name}"
        if not _NAME.match(name):
            self.fail(
                key,
                f"bad instrument name {name!r}",
                "use letters, digits, '_' or '-', starting with a letter",
            )
        if not isinstance(table, dict):
            self.fail(key, "must be a table", f"write it as [instruments.{name}]")
        driver = table.get("driver")
        if not isinstance(driver, str):
            self.fail(
                key,
                "missing 'driver'",
                f'add driver = "..." (one of: {", ".join(sorted(DRIVERS))})',
            )
        params = {k: self.resolve(v) for k, v in table.items() if k not in DAEMON_KEYS}
        # A rate of 0 turns a stream off; a call timeout of 0 would fault every call.
        numbers = {
            k: self.number(f"{key}.{k}", table[k], positive=k == "call_timeout_s")
            for k in ("poll_hz", "frame_fps", "call_timeout_s")
            if k in table
        }
        try:
            cls = driver_class(driver)
        except UnknownDriver as e:
            self.fail(f"{key}.driver", str(e), "check the spelling against the list above")
        except ImportError as e:
            self.fail(
                f"{key}.driver",
                f"driver {driver!r} cannot be imported: {e}",
                "install its dependencies",
            )
        accepted = parameter_names(cls)
        for k in params:
            if k not in accepted:
                self.fail(
                    f"{key}.{k}",
                    f"unknown parameter for driver {driver}",
                    f"accepted: {', '.join(accepted) or 'none'}",
                )
        spec = InstrumentSpec(name=name, driver=driver, params=params, **numbers)
        try:
            spec.create()
        except Exception as e:  # a driver's own validation of its parameters
            self.fail(
                key,
                f"driver {driver} rejected its parameters: {e}",
                "see the driver's documentation in docs/drivers/",
            )
        return spec
