"""A :class:`~drivers.toolkit.link.Link` over pyserial (RS-232, USB-serial adapters).

``port`` is anything :func:`serial.serial_for_url` opens: a device path
(``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, ``COM3``) or a URL such as
``socket://host:port`` for a serial-to-Ethernet bridge.
"""

from __future__ import annotations

import contextlib
from typing import Any

import serial

from drivers.toolkit.link import LinkLost, LinkTimeout

try:
    from termios import error as _TermiosError
except ImportError:  # Windows: no termios, pyserial raises SerialException only

    class _TermiosError(Exception):  # type: ignore[no-redef]
        pass


#: What pyserial lets escape when the port vanishes under it (a flush on a dead pty
#: raises termios.error, which is not an OSError).
_GONE = (serial.SerialException, OSError, _TermiosError)


class SerialLink:
    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        read_termination: str = "\r\n",
        write_termination: str = "\r\n",
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        xonxoff: bool = False,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.read_termination = read_termination.encode("latin-1")
        self.write_termination = write_termination.encode("latin-1")
        self.settings: dict[str, Any] = {
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
            "xonxoff": xonxoff,
        }
        self._port: Any = None

    @property
    def address(self) -> str:
        return self.port

    @property
    def hint(self) -> str:
        return (
            f"check that the instrument is powered, the cable is plugged in, {self.port} is "
            f"the right port and the instrument is set to {self.baudrate} baud"
        )

    def open(self) -> None:
        try:
            port = serial.serial_for_url(
                self.port,
                baudrate=self.baudrate,
                timeout=self.timeout_s,
                write_timeout=self.timeout_s,
                **self.settings,
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise LinkLost(f"cannot open: {e}") from e
        self._port = port

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            # The port vanished with the device; nothing left to release.
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    def write(self, message: str) -> None:
        data = message.encode("latin-1") + self.write_termination
        self._call(lambda port: port.write(data))

    def read(self) -> str:
        term = self.read_termination
        data: bytes = self._call(lambda port: port.read_until(term))
        if not data.endswith(term):
            got = f" (got only {data!r})" if data else ""
            raise LinkTimeout(f"no complete reply within {self.timeout_s:g} s{got}")
        return data[: -len(term)].decode("latin-1")

    def discard_input(self) -> None:
        self._call(lambda port: port.reset_input_buffer())

    def interrupt(self) -> None:
        port = self._port
        # pyserial's POSIX ports wake a blocked read/write through a pipe; URL ports
        # (socket://, rfc2217://) have no such pipe and end with their own timeout.
        for cancel in ("cancel_read", "cancel_write"):
            with contextlib.suppress(*_GONE, AttributeError):
                getattr(port, cancel)()

    def _call(self, fn: Any) -> Any:
        if self._port is None:
            raise LinkLost("the serial port is closed")
        try:
            return fn(self._port)
        except serial.SerialTimeoutException as e:
            raise LinkTimeout(f"write blocked for {self.timeout_s:g} s") from e
        except _GONE as e:
            raise LinkLost(str(e)) from e
