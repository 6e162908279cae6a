"""Where a daemon listens and where its token lies, as both the server and clients see it.

Addresses are strings so they fit a command line: a unix socket path (``/run/...``,
``unix:/run/...``), ``HOST:PORT`` / ``tcp://HOST:PORT`` for plain TCP and
``tls://HOST:PORT`` for TLS. The local default is a socket in the user's runtime
directory, with the token file next to it (see :func:`token_path_for`).
"""

from __future__ import annotations

import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Address:
    kind: str
    """``"unix"``, ``"tcp"`` or ``"tls"``."""
    path: Path | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return str(self.path)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}://{host}:{self.port}"


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/labd`` (a per-user tmpfs), else ``/tmp/labd-<uid>``."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "labd"
    return Path(f"/tmp/labd-{os.getuid()}")


def default_socket_path() -> Path:
    return runtime_dir() / "labd.sock"


def token_path_for(socket_path: Path) -> Path:
    """The token file belongs next to the socket: ``labd.sock`` → ``labd.token``."""
    return socket_path.with_suffix(".token")


def parse_address(text: str) -> Address:
    """Parse a ``--connect``/``--listen`` address; raises ValueError saying what is accepted."""
    text = text.strip()
    for scheme in ("tcp", "tls"):
        if text.startswith(scheme + "://"):
            host, port = _host_port(text[len(scheme) + 3 :], text)
            return Address(scheme, host=host, port=port)
    if text.startswith("unix:"):
        return Address("unix", path=Path(text[5:]).expanduser())
    if text.startswith(("/", ".", "~")) or ":" not in text:
        return Address("unix", path=Path(text).expanduser())
    host, port = _host_port(text, text)
    return Address("tcp", host=host, port=port)


def _host_port(text: str, original: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(
            f"bad address {original!r}: expected a socket path, HOST:PORT, tcp://HOST:PORT"
            " or tls://HOST:PORT"
        )
    return host.strip("[]") or "127.0.0.1", int(port_text)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or check that an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; choose another --socket path")
    if st.st_mode & 0o077 and path.parent == Path("/tmp"):
        path.chmod(0o700)


def write_token(path: Path) -> str:
    """Write a fresh random lab token to ``path`` (mode 0600, atomically) and return it."""
    # The prefix keeps a token from starting with "-": argparse would take
    # ``--token -abc`` for an option and the command line would refuse it.
    token = "lab-" + secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def read_token(path: Path) -> str:
    """The lab token stored at ``path``; raises FileNotFoundError/PermissionError with advice."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no labd token file at {path}: is a daemon running (start one with `labd serve`)?"
        ) from None
    except PermissionError:
        raise PermissionError(
            f"cannot read the labd token file {path}: it belongs to the user running the daemon"
        ) from None


@dataclass(frozen=True)
class TlsConfig:
    """Server side TLS: a certificate chain and its private key (PEM files)."""

    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


def client_tls_context(cafile: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """Verify the daemon against ``cafile`` (its self-signed certificate works) or the system CAs."""
    return ssl.create_default_context(cafile=None if cafile is None else os.fspath(cafile))
