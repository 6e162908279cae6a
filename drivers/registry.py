"""Driver names as used in a lab's TOML config, resolved lazily.

A config's ``driver = "..."`` is one of three things, tried in this order:

* a built-in name (:data:`DRIVERS`, e.g. ``"sim.stage"``);
* a ``"module:Class"`` path (e.g. ``"mypkg.meter:Meter"``), imported as written, for a
  driver that lives in the lab's own code;
* a name an installed package declares in the :data:`ENTRY_POINT_GROUP` entry-point group
  (e.g. ``"acme.meter"``), so a driver package needs no patch here
  (docs/writing-a-driver.md, "A driver package of your own").

Lazy on purpose: a lab of simulated instruments must not import pyvisa or pyserial, and a
typo in a config must be reported with the list of names that do exist. Every failure is
one line saying what to check, because the config checker shows it next to the file, line
and key (docs/config.md, "Errors"); the driver's own bugs are named as the driver's.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

#: config name -> "module:Class". Every class takes keyword-only parameters (the TOML
#: table of the instrument) and does no I/O before ``open()``.
DRIVERS: dict[str, str] = {
    "sim.stage": "drivers.sim.stage:SimStage",
    "sim.camera": "drivers.sim.camera:SimCamera",
    "sim.power_meter": "drivers.sim.power_meter:SimPowerMeter",
    "sim.thermometer": "drivers.sim.thermometer:SimThermometer",
    "sim.power_supply": "drivers.sim.power_supply:SimPowerSupply",
    "keysight.34461a": "drivers.keysight_34461a:Keysight34461A",
    "keysight.e36300": "drivers.keysight_e36300:KeysightE36300",
    "lakeshore.336": "drivers.lakeshore_336:LakeShore336",
    "thorlabs.ell14": "drivers.thorlabs_ell14:ThorlabsELL14",
    "newport.smc100": "drivers.newport_smc100:NewportSMC100",
    "newport.1830c": "drivers.newport_1830c:Newport1830C",
    "scpi.generic": "drivers.scpi_generic:GenericSCPI",
}

#: The entry-point group in which installed packages declare their drivers, in their
#: pyproject.toml: ``[project.entry-points."labd.drivers"]`` ``"acme.meter" = "acme_labd.meter:Meter"``.
ENTRY_POINT_GROUP = "labd.drivers"

_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

#: (name, package) clashes already warned about: one warning per process, not one per
#: config check or instrument restart.
_warned: set[tuple[str, str]] = set()


class UnknownDriver(LookupError):
    """The config names a driver that does not exist."""


class BrokenDriver(Exception):
    """The driver is named correctly but cannot be used: its module fails to import, the
    class is missing, or it is not a driver. The message says which, in one line."""


@dataclass(frozen=True)
class DriverEntry:
    """One driver name and where it comes from."""

    name: str
    target: str
    """``"module:Class"``."""
    package: str | None = None
    """The installed distribution that declares it (``"acme-labd 0.1.0"``); None: labd's own."""
    shadowed: bool = False
    """An installed name that a built-in one hides (the built-in is used)."""


def installed_drivers() -> list[DriverEntry]:
    """The drivers that installed packages declare, in name order, built-in clashes marked
    (and warned about once)."""
    entries = []
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        package = _package_of(point)
        shadowed = point.name in DRIVERS
        if shadowed and (point.name, package) not in _warned:
            _warned.add((point.name, package))
            log.warning(
                "installed package %s declares driver %r (%s), which is a built-in name;"
                ' the built-in %s is used; to use the other, write driver = "%s"',
                package,
                point.name,
                point.value,
                DRIVERS[point.name],
                point.value,
            )
        entries.append(DriverEntry(point.name, point.value, package, shadowed))
    return sorted(entries, key=lambda e: (e.name, e.package or ""))


def all_drivers() -> list[DriverEntry]:
    """Every driver name a config may use: the built-in ones, then the installed ones."""
    builtin = [DriverEntry(name, target) for name, target in sorted(DRIVERS.items())]
    return builtin + installed_drivers()


def driver_names() -> list[str]:
    """The names a config may give (built-in and installed), sorted, for hints."""
    return sorted({e.name for e in all_drivers()})


def driver_class(name: str) -> type[Any]:
    """Import and return the driver class a config calls ``name``.

    Raises :class:`UnknownDriver` when no driver has that name, and :class:`BrokenDriver`
    when it has one that cannot be used.
    """
    # Scanned even for a built-in name: an installed package hiding under it is warned of.
    installed = [e for e in installed_drivers() if e.name == name and not e.shadowed]
    if name in DRIVERS:
        return _load(DRIVERS[name], how=f"built-in driver {name!r}")
    if ":" in name:
        if not _PATH.match(name):
            raise UnknownDriver(
                f"{name!r} is not a module:Class path such as"
                ' "mypkg.meter:Meter" (dotted module, a colon, the class)'
            )
        return _load(name, how=f"driver {name!r}")
    if not installed:
        known = driver_names()
        raise UnknownDriver(
            f"unknown driver {name!r}{_did_you_mean(name, known)}; known drivers:"
            f' {", ".join(known)}; or write a class as driver = "module:Class"'
        )
    if len(installed) > 1:
        which = "; ".join(f"{e.package} as {e.target}" for e in installed)
        raise BrokenDriver(
            f"driver {name!r} is declared by more than one installed package ({which});"
            f' uninstall one, or name the class: driver = "{installed[0].target}"'
        )
    entry = installed[0]
    return _load(entry.target, how=f"driver {name!r} (from {entry.package}: {entry.target})")


def builtin_name(cls: type[Any]) -> str | None:
    """The built-in name of ``cls``, however the config named it (``"sim.stage"`` for
    ``"drivers.sim.stage:SimStage"``), so tables keyed by built-in names apply."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, t in DRIVERS.items() if t == target), None)


def parameter_names(cls: type[Any]) -> list[str]:
    """The keyword parameters a driver class accepts (for config checking and hints)."""
    sig = inspect.signature(cls)
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _load(target: str, *, how: str) -> type[Any]:
    """The class at ``target`` ("module:Class"), checked to be a driver."""
    module_name, _, attribute = target.partition(":")
    module = _import(module_name, how)
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            classes = [n for n, v in vars(module).items() if inspect.isclass(v)]
            raise BrokenDriver(
                f"{how}: module {module_name!r} ({module.__file__}) has no"
                f" {attribute!r}{_did_you_mean(attribute, classes)}"
            ) from None
    if not inspect.isclass(found):
        raise BrokenDriver(
            f"{how}: {target} is a {type(found).__name__}, not a driver class"
            " (see docs/writing-a-driver.md)"
        )
    missing = [
        m for m in ("open", "close") if not inspect.iscoroutinefunction(getattr(found, m, None))
    ]
    if missing:
        raise BrokenDriver(
            f"{how}: class {target} is not a driver: it has no"
            f" {' or '.join(f'async {m}()' for m in missing)} (see docs/writing-a-driver.md)"
        )
    return found


def _import(module_name: str, how: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or module_name
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise BrokenDriver(
                f"{how}: no module named {missing!r} in {sys.executable};"
                " check the spelling, or install the package that provides it there"
            ) from None
        raise BrokenDriver(
            f"{how}: module {module_name!r} needs {missing!r}, which is not installed;"
            " install the dependencies of the package that provides the driver"
        ) from None
    except Exception as e:  # the driver module's own bug, not labd's
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise BrokenDriver(
            f"{how}: importing module {module_name!r} failed: {type(e).__name__}"
            f"{f': {reason}' if reason else ''} (a bug in that module;"
            f' python -c "import {module_name}" shows where)'
        ) from None


def _package_of(point: metadata.EntryPoint) -> str:
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unnamed package"
