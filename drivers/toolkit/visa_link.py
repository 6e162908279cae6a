"""A :class:`~drivers.toolkit.link.Link` over pyvisa (GPIB, USBTMC, LXI, VISA serial).

``visa_library`` is what :class:`pyvisa.ResourceManager` takes: ``"@py"`` (pyvisa-py),
``""`` (the system's VISA, e.g. Keysight IO Libraries) or ``"path/to/devices.yaml@sim"``
(pyvisa-sim, which the tests use: the whole pyvisa stack runs, only the device is
simulated).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import pyvisa
import pyvisa.constants
import pyvisa.errors

from drivers.toolkit.link import LinkLost, LinkTimeout


class VisaLink:
    def __init__(
        self,
        resource: str,
        *,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        resource_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.resource = resource
        self.visa_library = visa_library
        self.timeout_s = timeout_s
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.resource_options = dict(resource_options or {})
        self._instrument: Any = None

    @property
    def address(self) -> str:
        return self.resource

    @property
    def hint(self) -> str:
        return (
            f"check that the instrument is powered, its cable is plugged in and it is listed "
            f"by pyvisa.ResourceManager({self.visa_library!r}).list_resources()"
        )

    def open(self) -> None:
        try:
            manager = pyvisa.ResourceManager(self.visa_library)
            instrument: Any = manager.open_resource(
                self.resource,
                read_termination=self.read_termination,
                write_termination=self.write_termination,
                timeout=round(self.timeout_s * 1000),
                **self.resource_options,
            )
        except (pyvisa.errors.Error, OSError, ValueError) as e:
            raise LinkLost(f"cannot open: {e}") from e
        if not instrument.session:
            # VI_NULL is never a valid session; pyvisa-sim reports a missing resource so.
            raise LinkLost(f"cannot open: {self.resource} was not found")
        self._instrument = instrument

    def close(self) -> None:
        instrument, self._instrument = self._instrument, None
        if instrument is not None:
            # The session died with the device; nothing left to release.
            with contextlib.suppress(pyvisa.errors.Error, OSError):
                instrument.close()

    def write(self, message: str) -> None:
        self._call(lambda inst: inst.write(message))

    def read(self) -> str:
        raw: bytes = self._call(lambda inst: inst.read_raw())
        if not raw:
            # A device never sends an empty message; a backend that reports errors only in
            # its status code (pyvisa-sim on a closed session) returns nothing instead.
            raise LinkLost("the VISA session returned no data")
        # latin-1 never fails: garbage reaches the reply parser, which names it.
        reply = raw.decode("latin-1")
        return reply.removesuffix(self.read_termination)

    def discard_input(self) -> None:
        pass  # a VISA message-based read is one whole message; nothing stale lingers

    def interrupt(self) -> None:
        pass  # VISA has no way to wake a blocked read from another thread

    def _call(self, fn: Any) -> Any:
        if self._instrument is None:
            raise LinkLost("the VISA session is closed")
        try:
            return fn(self._instrument)
        except pyvisa.errors.VisaIOError as e:
            if e.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise LinkTimeout(f"no reply within {self.timeout_s:g} s") from e
            raise LinkLost(e.description or str(e)) from e
        except pyvisa.errors.InvalidSession as e:
            raise LinkLost("the VISA session is no longer valid") from e
