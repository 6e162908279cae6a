"""Toolkit for message-based drivers: SCPI over VISA, ASCII over serial.

A driver declares its commands one line each (:func:`control`, :func:`measurement`,
:func:`setting`) on a :class:`MessageInstrument`; the toolkit does the rest once — worker
threads, timeouts, termination characters, query delays, error-queue checks, and errors
that name the instrument, the command and what to check. See docs/writing-a-driver.md.
"""

from drivers.toolkit.connection import Connection, ErrorCheck, ScpiErrorQueue
from drivers.toolkit.errors import CommandRejected, DeviceReportedFault, UnexpectedReply
from drivers.toolkit.instrument import Channel, MessageInstrument
from drivers.toolkit.link import Link, LinkLost, LinkTimeout
from drivers.toolkit.parameters import DeclaredParameters, ParameterDeclaration, Value, value
from drivers.toolkit.parsers import hex32, scpi_bool, scpi_string, signed_hex32
from drivers.toolkit.properties import (
    Control,
    Endpoint,
    Measurement,
    Setting,
    control,
    from_attribute,
    measurement,
    setting,
)
from drivers.toolkit.validators import InRange, OneOf, Validator, in_range, one_of
from drivers.toolkit.waits import settle_deadline

__all__ = [
    "Channel",
    "CommandRejected",
    "Connection",
    "Control",
    "DeclaredParameters",
    "DeviceReportedFault",
    "Endpoint",
    "ErrorCheck",
    "InRange",
    "Link",
    "LinkLost",
    "LinkTimeout",
    "Measurement",
    "MessageInstrument",
    "OneOf",
    "ParameterDeclaration",
    "ScpiErrorQueue",
    "Setting",
    "UnexpectedReply",
    "Validator",
    "Value",
    "control",
    "from_attribute",
    "hex32",
    "in_range",
    "measurement",
    "one_of",
    "scpi_bool",
    "scpi_string",
    "setting",
    "settle_deadline",
    "signed_hex32",
    "value",
]
