"""Lab configuration: a TOML file listing instruments, checked before anything starts.

A config error must be found at load time, with the file, the line, the key and what is
accepted, because a daemon that fails an hour into a run over a typo loses an hour of
data. Every problem of a file is reported at once, one line each, so that fixing a config
takes one round, not one per mistake (docs/config.md, "Errors"). Drivers are constructed
here once, without I/O, purely to check their parameters.

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
    integration_time = "5 ms"  # a quantity in any unit of the parameter's dimension

    [instruments.meter.settings] # parameters set after every open (docs/parameters.md)
    wavelength = "1064 nm"
"""

from __future__ import annotations

import difflib
import grp
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from drivers.registry import (
    BrokenDriver,
    UnknownDriver,
    builtin_name,
    driver_class,
    driver_names,
    parameter_names,
)
from labd.errors import ConfigError
from labd.values import (
    DAY_S,
    HOUR_S,
    BadValue,
    Number,
    count,
    creatable_directory,
    duration,
    rate,
)

log = logging.getLogger(__name__)

#: The fastest a reading poller may run. Each poll is a supervised driver call (docs/config.md);
#: at 1e9 Hz the loop never sleeps and one instrument takes a whole core.
MAX_POLL_HZ = 1000.0
#: The fastest live frame stream: a full simulated frame is 8 MiB.
MAX_FRAME_FPS = 100.0

#: The numbers of an instrument table that belong to the daemon, not to the driver.
INSTRUMENT_NUMBERS: dict[str, Number] = {
    "poll_hz": rate(high=MAX_POLL_HZ, why="0 turns polling off; faster is a busy loop"),
    "frame_fps": rate(high=MAX_FRAME_FPS, why="0 snaps only on demand"),
    "call_timeout_s": duration(high=HOUR_S, why="0 would fault every call"),
}

#: Keys of an instrument table that belong to the daemon, not to the driver.
DAEMON_KEYS = {"driver", "settings", "safe_state", *INSTRUMENT_NUMBERS}

#: The numbers of the [restart] table (every key of RestartPolicy).
RESTART_NUMBERS: dict[str, Number] = {
    "max_restarts": count(high=1000),
    "window_s": duration(high=DAY_S),
    "backoff_initial_s": duration(high=HOUR_S, zero=True),
    "backoff_max_s": duration(high=HOUR_S, zero=True),
    "open_timeout_s": duration(high=HOUR_S),
    "close_timeout_s": duration(high=HOUR_S),
}

#: The numbers of the [daemon] table.
DAEMON_NUMBERS: dict[str, Number] = {
    "retention_s": duration(high=DAY_S),
    "ring_memory_mb": Number(low=1, high=1 << 20, unit="MiB"),
    "disk_quota": Number(
        low=0,
        low_open=True,
        high=1 << 20,
        unit="GiB",
        why="the most the data directory may hold; omit it for 10% of its disk",
    ),
}

#: The keys of the [daemon] table.
DAEMON_TABLE_KEYS = (*DAEMON_NUMBERS, "data_dir", "persist", "group")


def default_data_dir() -> Path:
    """Where streams are persisted unless the config or ``--data-dir`` says otherwise: the
    user's XDG data directory, ``$XDG_DATA_HOME/labd`` (else ``~/.local/share/labd``; the
    XDG spec ignores a relative ``XDG_DATA_HOME``)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(os.path.expanduser("~/.local/share"))
    return base / "labd"


#: Units of driver parameters, for quantity strings ("20 ms"): those named with a unit
#: suffix (``timeout_s``, ``wavelength_nm``) by :data:`UNIT_SUFFIXES`, the others here, as
#: each driver's page in docs/drivers/ gives them.
PARAMETER_UNITS: dict[str, dict[str, str]] = {
    "sim.stage": {"settle_time": "s"},
    "sim.camera": {
        "exposure": "s",
        "drift_period": "s",
        "cooling_time_constant": "s",
        "ambient": "degC",
        "cooling_target": "degC",
    },
    "sim.power_meter": {
        "peak_power": "W",
        "background": "W",
        "noise_floor": "W",
        "integration_time": "s",
    },
    "sim.thermometer": {
        "temperature": "K",
        "drift_period": "s",
        "thermal_resistance": "K/W",
        "thermal_time_constant": "s",
    },
    "sim.power_supply": {
        "max_voltage": "V",
        "max_current": "A",
        "load_resistance": "ohm",
        "voltage": "V",
        "current_limit": "A",
        "voltage_noise": "V",
        "current_noise": "A",
    },
}
UNIT_SUFFIXES = {"_s": "s", "_hz": "Hz", "_nm": "nm", "_k": "K"}

#: Driver parameters that name another instrument -> the drivers it may name. The simulated
#: instruments find each other by name at read time (docs/drivers/sim.md), so a dangling
#: name would otherwise fault the first read, long after the daemon started.
REFERENCES: dict[tuple[str, str], tuple[str, ...]] = {
    ("sim.power_meter", "stage"): ("sim.stage",),
    ("sim.camera", "stage"): ("sim.stage",),
    ("sim.thermometer", "supply"): ("sim.power_supply",),
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_SECTIONS = ("daemon", "restart", "instruments")


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
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Parameter values set after every open, by channel ("" for the instrument itself),
    as written in the config (``"1064 nm"``); see docs/parameters.md."""
    safe_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Values set, by channel as ``settings``, when a script run that held the instrument
    for writing ends abnormally (:mod:`labd.safe_state`, docs/scripting.md)."""

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
    """Where the persister writes (None: do not persist). A config file persists by default,
    into :func:`default_data_dir`; ``persist = false`` gives None (docs/config.md)."""
    disk_quota_bytes: int | None = None
    """The most the data directory may hold (None: :mod:`labd.rings.retention`'s default)."""
    ring_memory_bytes: int | None = None
    """Shared memory all rings of the daemon may use together (None: a share of the
    machine's, :func:`labd.rings.sizing.default_ring_memory`)."""
    group: str | None = None
    """A group of this machine that may read the rings and persisted files (None: only the
    daemon's user)."""
    source: str = "<default>"


def load_config(path: str | os.PathLike[str]) -> LabConfig:
    """Read and check the lab config at ``path``; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot read the lab config ({e.strerror}); check the path"
        ) from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{data[e.start]:02x});"
            " save the file as UTF-8"
        ) from None
    return parse_config(text, source=str(path), base_dir=path.parent)


def default_config() -> LabConfig:
    """The simulated lab that ships with labd (``labd demo`` and tests use it)."""
    text = resources.files("labd").joinpath("default_lab.toml").read_text()
    return parse_config(text, source="<default simulated lab>")


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> LabConfig:
    """Check the lab config ``text``; raises :class:`ConfigError` listing every problem."""
    checker = _Checker(text, source, base_dir)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(checker.toml_error(e)) from None
    for key in doc:
        if key not in _SECTIONS:
            checker.problem(key, f"unknown section [{key}]{_did_you_mean(key, _SECTIONS)}")
    daemon = checker.table(doc, "daemon")
    restart = checker.table(doc, "restart")
    instruments = checker.table(doc, "instruments")
    if not instruments and "instruments" not in checker.bad_tables:
        checker.problem("instruments", "no instruments configured; add an [instruments.NAME] table")
    specs = [checker.instrument(name, table) for name, table in instruments.items()]
    checker.check_references()
    config = LabConfig(
        instruments=[spec for spec in specs if spec is not None],
        restart=checker.restart_policy(restart),
        source=source,
        **checker.daemon_settings(daemon),
    )
    checker.raise_problems()
    return config


class _Checker:
    """Collects every problem of one config file, each naming the file, line and key."""

    def __init__(self, text: str, source: str, base_dir: Path | None) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.base_dir = base_dir
        self.problems: list[tuple[int, str]] = []
        self.bad_tables: set[str] = set()
        self.world_names: dict[str, set[str]] = {}
        """driver -> the names its instruments are known by to their siblings."""
        self.references: list[tuple[str, str, tuple[str, ...]]] = []
        """(key, instrument name it gives, drivers it may name), checked once all are known."""

    # -- reporting ---------------------------------------------------------------------

    def problem(self, key: str, message: str) -> None:
        line = self.line_of(key)
        where = f"{self.source}:{line}" if line else self.source
        self.problems.append((line or 0, f"{where}: {key}: {message}"))

    def raise_problems(self) -> None:
        if self.problems:
            lines = [text for _, text in sorted(self.problems, key=lambda p: p[0])]
            raise ConfigError("\n".join(lines))

    def toml_error(self, error: tomllib.TOMLDecodeError) -> str:
        message = str(error)
        at = re.search(r" \(at line (\d+), column (\d+)\)$", message)
        if at is None:
            return f"{self.source}: not valid TOML: {message}"
        return f"{self.source}:{at[1]}:{at[2]}: not valid TOML: {message[: at.start()]}"

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` ("instruments.stage.velocity", "daemon.retention_s"): under
        the deepest table header that starts it, the line of the next part of the key."""
        parts = key.split(".")
        header = -1  # the top of the file, before any header
        for depth in range(len(parts), 0, -1):
            found = self._header_line(parts[:depth])
            if found is not None:
                header = found
                break
        else:
            depth = 0
        if depth == len(parts):
            return header + 1
        leaf = re.compile(r'^\s*"?' + re.escape(parts[depth]) + r'"?\s*[=.]')
        for i in range(header + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if leaf.match(self.lines[i]):
                return i + 1
        return header + 1 if header >= 0 else None

    def _header_line(self, table: list[str]) -> int | None:
        header = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(map(re.escape, table)) + r"\s*\]+")
        return next((i for i, line in enumerate(self.lines) if header.match(line)), None)

    # -- values --------------------------------------------------------------------------

    def number(self, key: str, value: Any, spec: Number) -> float | None:
        try:
            return spec.check(value)
        except BadValue as e:
            self.problem(key, str(e))
            return None

    def numbers(
        self, table_key: str, table: Mapping[str, Any], specs: Mapping[str, Number]
    ) -> dict[str, float]:
        """The keys of ``specs`` that ``table`` gives, checked; bad ones are left out."""
        checked = {
            k: self.number(f"{table_key}.{k}", table[k], specs[k]) for k in specs if k in table
        }
        return {k: v for k, v in checked.items() if v is not None}

    def known_keys(
        self, table_key: str, values: Mapping[str, Any], accepted: Collection[str]
    ) -> None:
        for key in values:
            if key not in accepted:
                self.problem(
                    f"{table_key}.{key}",
                    f"unknown key{_did_you_mean(key, accepted)}; accepted keys: {', '.join(accepted)}",
                )

    def table(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.problem(key, f"must be a table; write it as [{key}]")
            self.bad_tables.add(key)
            return {}
        return dict(value)

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

    # -- sections ------------------------------------------------------------------------

    def daemon_settings(self, table: Mapping[str, Any]) -> dict[str, Any]:
        """The LabConfig fields of the [daemon] table that it gives."""
        self.known_keys("daemon", table, DAEMON_TABLE_KEYS)
        numbers = self.numbers("daemon", table, DAEMON_NUMBERS)
        settings: dict[str, Any] = {}
        if "retention_s" in numbers:
            settings["retention_s"] = numbers["retention_s"]
        if "ring_memory_mb" in numbers:
            settings["ring_memory_bytes"] = int(numbers["ring_memory_mb"] * (1 << 20))
        if "disk_quota" in numbers:
            settings["disk_quota_bytes"] = round(numbers["disk_quota"] * (1 << 30))
        persist = table.get("persist", True)
        if not isinstance(persist, bool):
            self.problem(
                "daemon.persist",
                f"must be true or false, got {persist!r} (false: nothing is written to disk)",
            )
        if persist is False:
            settings["data_dir"] = None
        elif "data_dir" in table:
            settings["data_dir"] = self.data_dir(table["data_dir"])
        else:  # checked where it is used: --data-dir or --no-persist may still replace it
            settings["data_dir"] = default_data_dir()
        if "group" in table:
            settings["group"] = self.group(table["group"])
        return settings

    def data_dir(self, value: Any) -> Path | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(
                "daemon.data_dir", f'must be a directory path such as "~/labd-data", got {value!r}'
            )
            return None
        path = Path(os.path.expanduser(value))
        if self.base_dir is not None and not path.is_absolute():
            path = self.base_dir / path
        try:
            return creatable_directory(path)
        except BadValue as e:
            self.problem("daemon.data_dir", str(e))
            return None

    def group(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(
                "daemon.group", f'must be the name of a group, such as "lab", got {value!r}'
            )
            return None
        try:
            grp.getgrnam(value)
        except KeyError:
            self.problem("daemon.group", f"no group {value!r} on this machine (see /etc/group)")
            return None
        return value

    def restart_policy(self, table: Mapping[str, Any]) -> RestartPolicy:
        self.known_keys("restart", table, tuple(RESTART_NUMBERS))
        values: dict[str, Any] = self.numbers("restart", table, RESTART_NUMBERS)
        if "max_restarts" in values:
            values["max_restarts"] = int(values["max_restarts"])
        policy = RestartPolicy(**values)
        if policy.backoff_max_s < policy.backoff_initial_s:
            key = "backoff_max_s" if "backoff_max_s" in values else "backoff_initial_s"
            self.problem(
                f"restart.{key}",
                f"backoff_max_s ({policy.backoff_max_s:g} s) is below backoff_initial_s"
                f" ({policy.backoff_initial_s:g} s); the back-off starts at the one and"
                " doubles up to the other",
            )
        return policy

    def instrument(self, name: str, table: Any) -> InstrumentSpec | None:
        """The instrument ``name``, or None when it has problems (they are recorded)."""
        key = f"instruments.{name}"
        problems_before = len(self.problems)
        if not _NAME.match(name):
            self.problem(
                key,
                f"bad instrument name {name!r}: use letters, digits, '_' or '-', starting with a letter",
            )
        if not isinstance(table, dict):
            self.problem(key, f"must be a table; write it as [instruments.{name}]")
            return None
        driver = table.get("driver")
        if not isinstance(driver, str):
            got = (
                "missing 'driver'" if driver is None else f"driver must be a string, got {driver!r}"
            )
            self.problem(
                key,
                f'{got}; add driver = "..." (one of: {", ".join(driver_names())},'
                ' or "module:Class")',
            )
            return None
        try:
            cls = driver_class(driver)  # imports its module: a missing one is found now
        except (UnknownDriver, BrokenDriver) as e:
            self.problem(f"{key}.driver", str(e))
            return None
        # The tables keyed by driver name (units, references) apply to a built-in driver
        # however it is named, "sim.stage" or "drivers.sim.stage:SimStage".
        kind = builtin_name(cls) or driver
        accepted = parameter_names(cls)
        if "name" in accepted:
            self.world_names.setdefault(kind, set()).add(str(table.get("name", name)))
        numbers = self.numbers(key, table, INSTRUMENT_NUMBERS)
        params = self.parameters(key, kind, cls, table)
        settings = self.settings(key, table.get("settings", {}))
        safe_state = self.settings(key, table.get("safe_state", {}), "safe_state")
        self.note_references(key, kind, cls, params)
        if len(self.problems) > problems_before:
            return None
        spec = InstrumentSpec(
            name=name, driver=driver, params=params, settings=settings, safe_state=safe_state,
            **numbers,
        )  # fmt: skip
        try:
            instrument = spec.create()
        except Exception as e:  # a driver's own validation of its parameters
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            named = [k for k in params if re.search(rf"\b{re.escape(k)}\b", reason)]
            where = f"{key}.{named[0]}" if len(named) == 1 else key
            self.problem(where, f"driver {driver} rejected its parameters: {reason}")
            return None
        self.check_settings(key, instrument, settings)
        self.check_settings(key, instrument, safe_state, "safe_state")
        if len(self.problems) > problems_before:
            return None
        return spec

    def settings(
        self, key: str, table: object, section: str = "settings"
    ) -> dict[str, dict[str, Any]]:
        """``[instruments.X.settings]`` (or ``.safe_state``): parameter = value, and a
        sub-table per channel."""
        where = f"{key}.{section}"
        if not isinstance(table, dict):
            self.problem(where, f"must be a table of parameter = value; write [{where}]")
            return {}
        settings: dict[str, dict[str, Any]] = {"": {}}
        for name, value in table.items():
            if isinstance(value, dict):  # a channel: [instruments.tc.settings.A]
                for param, channel_value in value.items():
                    if self.setting_value(f"{where}.{name}.{param}", channel_value):
                        settings.setdefault(name, {})[param] = channel_value
            elif self.setting_value(f"{where}.{name}", value):
                settings[""][name] = value
        return {channel: values for channel, values in settings.items() if values}

    def setting_value(self, key: str, value: object) -> bool:
        if isinstance(value, str | int | float | bool):
            return True
        self.problem(key, f"must be a number, a quantity, true/false or text, got {value!r}")
        return False

    def check_settings(
        self,
        key: str,
        instrument: object,
        settings: dict[str, dict[str, Any]],
        section: str = "settings",
    ) -> None:
        """Check each setting against the parameter it names, where the driver can list its
        parameters without I/O (declared ones); others are checked when it opens. A safe
        state may also name capability set-points (:mod:`labd.safe_state`)."""
        from capabilities import CapabilityError, Configurable, HasChannels
        from capabilities.parameters import find
        from labd import safe_state
        from labd.values import parameter_value

        channels = dict(instrument.channels()) if isinstance(instrument, HasChannels) else {}
        for channel, values in settings.items():
            target = channels.get(channel) if channel else instrument
            where = f"{key}.{section}" + (f".{channel}" if channel else "")
            if target is None:
                known = ", ".join(channels) or "none"
                self.problem(where, f"{key} has no channel {channel!r} (its channels: {known})")
                continue
            if section == "safe_state":
                described = (
                    parameters_without_io(target) if isinstance(target, Configurable) else []
                )
                for name, value in values.items():
                    try:
                        safe_state.check(target, name, value, described)
                    except CapabilityError as e:
                        self.problem(f"{where}.{name}", str(e))
                continue
            if not isinstance(target, Configurable):
                self.problem(where, "this instrument has no parameters to set")
                continue
            described = parameters_without_io(target)
            if described is None:
                continue
            for name, value in values.items():
                try:
                    parameter_value(find(list(described), name, "this instrument"), value)
                except CapabilityError as e:
                    self.problem(f"{where}.{name}", str(e))

    def parameters(
        self, key: str, driver: str, cls: type[Any], table: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The driver parameters of ``table``, checked against the driver's signature."""
        accepted = parameter_names(cls)
        hints = _constructor_hints(driver, cls)
        params: dict[str, Any] = {}
        for k, value in table.items():
            if k in DAEMON_KEYS:
                continue
            if k not in accepted:
                self.problem(
                    f"{key}.{k}",
                    f"unknown parameter for driver {driver}{_did_you_mean(k, [*accepted, *DAEMON_KEYS])};"
                    f" accepted: {', '.join(accepted) or 'none'} (and {', '.join(sorted(DAEMON_KEYS))})",
                )
                continue
            try:
                params[k] = self.resolve(
                    _check_parameter(value, hints.get(k), parameter_unit(driver, k))
                )
            except BadValue as e:
                self.problem(f"{key}.{k}", str(e))
        return params

    def note_references(
        self, key: str, driver: str, cls: type[Any], params: Mapping[str, Any]
    ) -> None:
        defaults = {p: v for p, v in _defaults(cls).items() if isinstance(v, str)}
        for (referrer, parameter), targets in REFERENCES.items():
            if referrer != driver:
                continue
            if parameter in params:
                if isinstance(params[parameter], str):
                    self.references.append((f"{key}.{parameter}", params[parameter], targets))
            elif parameter in defaults:
                self.references.append((key, defaults[parameter], targets))

    def check_references(self) -> None:
        for key, target, drivers in self.references:
            known = set().union(*(self.world_names.get(d, set()) for d in drivers))
            if target in known:
                continue
            parameter = key.rsplit(".", 1)[1] if key.count(".") == 2 else None
            said = f"{parameter} = {target!r}" if parameter else f"its default {target!r}"
            kinds = " or ".join(drivers)
            there = (
                f"; the {kinds} instruments are: {', '.join(sorted(known))}"
                if known
                else f"; there is no {kinds} instrument"
            )
            self.problem(
                key, f"{said} names no {kinds} instrument{_did_you_mean(target, known)}{there}"
            )


def parameters_without_io(target: Any) -> list[Any] | None:
    """``target.parameters()`` if it answers without waiting on anything (a driver's
    declared parameters do), else None: the list then needs the instrument, opened."""
    coroutine = target.parameters()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return list(done.value)
    except Exception:  # it needed the instrument: checked when it opens instead
        return None
    coroutine.close()
    return None


def _constructor_hints(driver: str, cls: type[Any]) -> dict[str, Any]:
    """The type hints of a driver's constructor, which type its parameters.

    Hints that cannot be evaluated (a name imported only for type checkers, say) are a
    flaw of the driver, not of the config: its parameters then reach it unchecked, and
    the driver's own validation at construction still runs.
    """
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception as e:
        log.warning(
            "driver %s: the type hints of %s.__init__ cannot be evaluated (%s: %s), so its"
            " parameters are passed to it without type checks",
            driver,
            cls.__qualname__,
            type(e).__name__,
            e,
        )
        return {}


def parameter_unit(driver: str, parameter: str) -> str | None:
    """The unit of a driver parameter, if it has one (see :data:`PARAMETER_UNITS`)."""
    unit = PARAMETER_UNITS.get(driver, {}).get(parameter)
    if unit is not None:
        return unit
    return next((u for suffix, u in UNIT_SUFFIXES.items() if parameter.endswith(suffix)), None)


_FINITE = Number()


def _check_parameter(value: Any, hint: Any, unit: str | None) -> Any:
    """``value`` as the driver's signature types it (converted from a quantity string when
    the parameter has a unit); raises BadValue saying what the parameter takes."""
    kinds = _kinds(hint)
    numeric = kinds is None or bool(kinds & {int, float})
    if (
        unit is not None
        and numeric
        and isinstance(value, int | float | str)
        and not isinstance(value, bool)
    ):
        value = Number(unit=unit).check(value)
    if kinds is None:
        return value
    if isinstance(value, bool):
        if bool in kinds:
            return value
    elif isinstance(value, int | float) and kinds & {int, float}:
        _FINITE.check(value)
        if float in kinds:
            return value
        if isinstance(value, int) or value.is_integer():
            return int(value)
    elif type(value) in kinds:  # str, dict
        return value
    wanted = " or ".join(_KIND_NAMES[k] for k in sorted(kinds, key=_KIND_NAMES.__getitem__))
    shown = "true or false" if isinstance(value, bool) else repr(value)
    raise BadValue(f"must be {wanted}{f' in {unit}' if unit else ''}, got {shown}")


_KIND_NAMES: dict[type, str] = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    dict: "a table",
}


def _kinds(hint: Any) -> set[type] | None:
    """The TOML value kinds a parameter annotation accepts; None: anything."""
    if hint is None or hint is Any:
        return None
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    kinds: set[type] = set()
    for option in options:
        if option is type(None):
            continue
        origin = typing.get_origin(option) or option
        if origin in (Mapping, dict):
            kinds.add(dict)
        elif origin in _KIND_NAMES:
            kinds.add(origin)
        else:
            return None
    return kinds


def _defaults(cls: type[Any]) -> dict[str, Any]:
    import inspect

    return {
        p.name: p.default
        for p in inspect.signature(cls).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""
