"""Driver names as used in a lab's TOML config, resolved lazily.

Lazy on purpose: a lab of simulated instruments must not import pyvisa or pyserial,
and a typo in a config must be reported with the list of names that do exist.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

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


class UnknownDriver(LookupError):
    """The config names a driver that does not exist."""


def driver_class(name: str) -> type[Any]:
    """Import and return the class registered under ``name``."""
    try:
        target = DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise UnknownDriver(f"unknown driver {name!r}; known drivers: {known}") from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Any] = getattr(module, class_name)
    return cls


def parameter_names(cls: type[Any]) -> list[str]:
    """The keyword parameters a driver class accepts (for config checking and hints)."""
    sig = inspect.signature(cls)
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
