"""Simulated instruments that speak the real protocols, for tests and demos.

The VISA instruments are pyvisa-sim YAML files (``*.yaml`` here), opened through the whole
pyvisa stack with ``visa_library="<file>.yaml@sim"``. The serial instruments are
:class:`~drivers.devices.serial_device.SerialDevice` subclasses serving a real pseudo
terminal that pyserial opens like a USB-serial adapter; they can stop answering, answer
garbage, and vanish and come back, so the error paths of the drivers can be exercised.

Run one from a shell (or a test that needs it in another process)::

    python -m drivers.devices ell14 --link /tmp/ell14
"""

from pathlib import Path
from typing import Any

#: The folder of the pyvisa-sim YAML files.
YAML_DIR = Path(__file__).parent


def visa_library(name: str) -> str:
    """The ``visa_library`` string for one of the YAML files here, e.g. ``"keysight_34461a"``."""
    path = YAML_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in YAML_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no simulated VISA device {name!r}; known: {known}")
    return f"{path}@sim"


class VisaTraffic:
    """Records what a pyvisa-sim device receives, so a test can assert a command was (or
    was never) sent. Attach it to an open session: ``traffic = VisaTraffic(resource)``
    where ``resource`` is the ``pyvisa`` resource object (a simulated one)."""

    def __init__(self, resource: Any) -> None:
        self.device = resource.visalib.sessions[resource.session].device
        self.commands: list[str] = []
        self._original = self.device.write

        def record(data: bytes) -> None:
            self.commands.append(data.decode("latin-1").rstrip("\r\n"))
            self._original(data)

        self.device.write = record

    def detach(self) -> None:
        self.device.write = self._original
