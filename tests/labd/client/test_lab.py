"""labd.client against a real daemon: TLS over TCP, state watching, a daemon that dies."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import trio

from capabilities import CapabilityError, FaultInjectable, Readable
from labd import aio
from labd.client import ConnectionLost, connect, connect_blocking
from labd.errors import LabdError
from tests.labd.rpc.conftest import start_labd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_state_watch_and_lost_daemon(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    daemon = start_labd(
        tmp_path / "d", "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
        "--tls-key", str(key),
    )  # fmt: skip
    try:
        address = f"tls://127.0.0.1:{port}"
        # A client that does not trust the certificate is refused by TLS itself.
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            connect_blocking(address, token=daemon.token)

        async def main() -> None:
            async with connect(address, token=daemon.token, tls_ca=str(cert)) as lab:
                meter = await lab.instrument("meter").get(Readable)
                assert (await meter.read()).unit
                async with lab.watch_states() as changes:
                    faults = await lab.instrument("meter").get(FaultInjectable)
                    await faults.inject_fault("raise")
                    with pytest.raises((LabdError, CapabilityError)):  # the next call fails
                        await meter.read()
                    with trio.fail_after(10):
                        async for change in changes:
                            if change.instrument == "meter" and change.state == "faulted":
                                break
                daemon.proc.kill()
                with trio.fail_after(10), pytest.raises(ConnectionLost, match="went away"):
                    while True:
                        await meter.read()
                        await trio.sleep(0.05)

        aio.run(main)
    finally:
        daemon.stop()
