"""Answer "which capabilities does this instrument have?"."""

from __future__ import annotations

from capabilities.protocols import (
    Configurable,
    Cooled,
    ExposureControl,
    FaultInjectable,
    FrameProducer,
    Movable,
    Readable,
    RoiSelectable,
    Stoppable,
    Switchable,
    TemperatureController,
    TemperatureSensor,
    Triggerable,
    VoltageSource,
    WavelengthTunable,
)

#: Every capability by its wire name, in a stable order (the schema mirrors this list).
CAPABILITIES: dict[str, type] = {
    "Movable": Movable,
    "Stoppable": Stoppable,
    "Readable": Readable,
    "Triggerable": Triggerable,
    "FrameProducer": FrameProducer,
    "ExposureControl": ExposureControl,
    "RoiSelectable": RoiSelectable,
    "Cooled": Cooled,
    "TemperatureSensor": TemperatureSensor,
    "VoltageSource": VoltageSource,
    "Switchable": Switchable,
    "FaultInjectable": FaultInjectable,
    "Configurable": Configurable,
    "WavelengthTunable": WavelengthTunable,
    "TemperatureController": TemperatureController,
}


def capabilities_of(instrument: object) -> list[str]:
    """Names of the capabilities ``instrument`` implements, in :data:`CAPABILITIES` order.

    ``isinstance`` against a runtime-checkable Protocol checks that the methods exist;
    signatures are mypy's job.
    """
    return [name for name, proto in CAPABILITIES.items() if isinstance(instrument, proto)]


def capability(name: str) -> type:
    """The Protocol called ``name``; raises ``KeyError`` with the known names otherwise."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        known = ", ".join(CAPABILITIES)
        raise KeyError(f"unknown capability {name!r}; known: {known}") from None
