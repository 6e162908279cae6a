"""Reply parsers shared by drivers. Each raises ``ValueError`` on a reply it does not know,
which the toolkit turns into :class:`~drivers.toolkit.errors.UnexpectedReply`."""

from __future__ import annotations


def scpi_bool(reply: str) -> bool:
    """SCPI booleans: ``1``/``0`` (what instruments answer) or ``ON``/``OFF``."""
    text = reply.strip().upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    raise ValueError(reply)


def scpi_string(reply: str) -> str:
    """A SCPI quoted string reply (``"VOLT"``) without its quotes."""
    return reply.strip().strip('"')


def signed_hex32(reply: str) -> int:
    """Eight hex digits holding a two's-complement 32-bit integer (Thorlabs Elliptec)."""
    if len(reply) != 8:
        raise ValueError(reply)
    value = int(reply, 16)
    return value - (1 << 32) if value & (1 << 31) else value


def hex32(value: int) -> str:
    """``value`` as eight upper-case hex digits, two's complement (Thorlabs Elliptec)."""
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"{value} does not fit in 32 bits")
    return f"{value & 0xFFFFFFFF:08X}"
