"""Declarative commands: one line per property of a message-based instrument.

In the spirit of PyMeasure's ``control``/``measurement``, adapted to async I/O::

    class Supply(MessageInstrument):
        voltage = control("VOLT?", "VOLT {:g}", validator=in_range(0, 30, "V"), unit="V")
        output = control("OUTP?", "OUTP {:d}", parse=scpi_bool, format=int)
        current = measurement("MEAS:CURR?", unit="A")

        async def set_voltage(self, volts: float) -> None:
            await self.voltage.set(volts)        # validated, formatted, sent, error-checked

Reading the attribute on an instance gives a bound accessor whose ``get()``/``set()``
are coroutines, so mypy knows ``await self.voltage.get()`` is a ``float`` and
``await self.output.get()`` a ``bool``.

Commands are :meth:`str.format` templates: ``{}`` (or ``{:g}``, ``{:08X}``...) is the
value, named fields (``{ch}``, ``{addr}``) come from the endpoint's ``command_fields()``,
so one declaration serves every channel of a multi-channel instrument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from drivers.toolkit.connection import Connection
from drivers.toolkit.validators import Validator

T = TypeVar("T")
E = TypeVar("E", bound="Endpoint")


class Endpoint:
    """Anything that talks through a :class:`Connection`: an instrument or one channel."""

    connection: Connection

    @property
    def label(self) -> str:
        """How messages name this endpoint."""
        return self.connection.name

    def command_fields(self) -> Mapping[str, object]:
        """Named fields filled into command templates (``{ch}``, ``{addr}``)."""
        return {}


class from_attribute:
    """A validator looked up on the endpoint, for ranges that differ per channel or model."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def resolve(self, endpoint: Endpoint) -> Validator[Any]:
        validator: Validator[Any] = getattr(endpoint, self.attribute)
        return validator


def _format(template: str, endpoint: Endpoint, *values: object) -> str:
    return template.format(*values, **endpoint.command_fields())


class _Query(Generic[T]):
    def __init__(self, command: str, parse: Callable[[str], T], prefix: str, expected: str) -> None:
        self.command = command
        self.parse = parse
        self.prefix = prefix
        self.expected = expected

    async def run(self, endpoint: Endpoint) -> T:
        command = _format(self.command, endpoint)
        prefix = _format(self.prefix, endpoint)
        reply = await endpoint.connection.query(command, reply_prefix=prefix)
        if not reply.startswith(prefix):
            raise endpoint.connection.unexpected(command, reply, f"a reply starting {prefix!r}")
        try:
            return self.parse(reply[len(prefix) :].strip())
        except (ValueError, KeyError, IndexError):
            raise endpoint.connection.unexpected(command, reply, self.expected) from None


class _Write(Generic[T]):
    def __init__(
        self,
        command: str,
        format: Callable[[T], object] | None,
        validator: Validator[T] | from_attribute | None,
        check_errors: bool,
        unit: str,
    ) -> None:
        self.command = command
        self.format = format
        self.validator = validator
        self.check_errors = check_errors
        self.unit = unit

    async def run(self, endpoint: Endpoint, name: str, value: T) -> None:
        validator = self.validator
        if isinstance(validator, from_attribute):
            validator = validator.resolve(endpoint)
        if validator is not None:
            validator.check(value, f"{endpoint.label}: {name}")
        formatted = value if self.format is None else self.format(value)
        command = _format(self.command, endpoint, formatted)
        await endpoint.connection.write(command, check_errors=self.check_errors)


class _Declaration:
    name = "<unnamed>"
    unit = ""
    doc = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class Measurement(_Declaration, Generic[T]):
    """A read-only property (see :func:`measurement`)."""

    def __init__(self, query: _Query[T], unit: str, doc: str) -> None:
        self.query = query
        self.unit = unit
        self.doc = doc

    @overload
    def __get__(self, endpoint: None, owner: type) -> Measurement[T]: ...
    @overload
    def __get__(self, endpoint: Endpoint, owner: type) -> BoundMeasurement[T]: ...
    def __get__(
        self, endpoint: Endpoint | None, owner: type
    ) -> Measurement[T] | BoundMeasurement[T]:
        return self if endpoint is None else BoundMeasurement(self, endpoint)


class Setting(_Declaration, Generic[T]):
    """A write-only property or a command with an argument (see :func:`setting`)."""

    def __init__(self, write: _Write[T], doc: str) -> None:
        self.write = write
        self.unit = write.unit
        self.doc = doc

    @overload
    def __get__(self, endpoint: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, endpoint: Endpoint, owner: type) -> BoundSetting[T]: ...
    def __get__(self, endpoint: Endpoint | None, owner: type) -> Setting[T] | BoundSetting[T]:
        return self if endpoint is None else BoundSetting(self, endpoint)


class Control(_Declaration, Generic[T]):
    """A read-write property (see :func:`control`)."""

    def __init__(self, query: _Query[T], write: _Write[T], doc: str) -> None:
        self.query = query
        self.write = write
        self.unit = write.unit
        self.doc = doc

    @overload
    def __get__(self, endpoint: None, owner: type) -> Control[T]: ...
    @overload
    def __get__(self, endpoint: Endpoint, owner: type) -> BoundControl[T]: ...
    def __get__(self, endpoint: Endpoint | None, owner: type) -> Control[T] | BoundControl[T]:
        return self if endpoint is None else BoundControl(self, endpoint)


class BoundMeasurement(Generic[T]):
    def __init__(self, declaration: Measurement[T], endpoint: Endpoint) -> None:
        self.declaration = declaration
        self.endpoint = endpoint

    async def get(self) -> T:
        return await self.declaration.query.run(self.endpoint)


class BoundSetting(Generic[T]):
    def __init__(self, declaration: Setting[T], endpoint: Endpoint) -> None:
        self.declaration = declaration
        self.endpoint = endpoint

    async def set(self, value: T) -> None:
        """Validate ``value`` (raising OutOfRange before any I/O), send it, check errors."""
        await self.declaration.write.run(self.endpoint, self.declaration.name, value)


class BoundControl(Generic[T]):
    def __init__(self, declaration: Control[T], endpoint: Endpoint) -> None:
        self.declaration = declaration
        self.endpoint = endpoint

    async def get(self) -> T:
        return await self.declaration.query.run(self.endpoint)

    async def set(self, value: T) -> None:
        """Validate ``value`` (raising OutOfRange before any I/O), send it, check errors."""
        await self.declaration.write.run(self.endpoint, self.declaration.name, value)


# --- the declaration functions drivers use ---


@overload
def measurement(
    query: str, *, prefix: str = "", unit: str = "", doc: str = ""
) -> Measurement[float]: ...
@overload
def measurement(
    query: str,
    *,
    parse: Callable[[str], T],
    expected: str = ...,
    prefix: str = "",
    unit: str = "",
    doc: str = "",
) -> Measurement[T]: ...
def measurement(
    query: str,
    *,
    parse: Callable[[str], Any] = float,
    expected: str = "a number",
    prefix: str = "",
    unit: str = "",
    doc: str = "",
) -> Measurement[Any]:
    """A value read with ``query``; ``parse`` turns the reply (after ``prefix``) into it.

    A reply that does not start with ``prefix`` or that ``parse`` refuses (``ValueError``)
    raises :class:`~drivers.toolkit.errors.UnexpectedReply` saying what was expected.
    """
    return Measurement(_Query(query, parse, prefix, expected), unit, doc)


@overload
def setting(
    command: str,
    *,
    validator: Validator[float] | from_attribute | None = None,
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
) -> Setting[float]: ...
@overload
def setting(
    command: str,
    *,
    format: Callable[[T], object],
    validator: Validator[T] | from_attribute | None = None,
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
) -> Setting[T]: ...
def setting(
    command: str,
    *,
    format: Callable[[Any], object] | None = None,
    validator: Validator[Any] | from_attribute | None = None,
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
) -> Setting[Any]:
    """A value sent with ``command`` (a format template); validated before anything is sent."""
    return Setting(_Write(command, format, validator, check_errors, unit), doc)


@overload
def control(
    query: str,
    command: str,
    *,
    validator: Validator[float] | from_attribute | None = None,
    prefix: str = "",
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
) -> Control[float]: ...
@overload
def control(
    query: str,
    command: str,
    *,
    parse: Callable[[str], T],
    format: Callable[[T], object] | None = None,
    expected: str = ...,
    validator: Validator[T] | from_attribute | None = None,
    prefix: str = "",
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
) -> Control[T]: ...
def control(
    query: str,
    command: str,
    *,
    parse: Callable[[str], Any] = float,
    format: Callable[[Any], object] | None = None,
    expected: str = "a number",
    validator: Validator[Any] | from_attribute | None = None,
    prefix: str = "",
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
) -> Control[Any]:
    """A value read with ``query`` and set with ``command``: a :func:`measurement` and a
    :func:`setting` in one line."""
    return Control(
        _Query(query, parse, prefix, expected),
        _Write(command, format, validator, check_errors, unit),
        doc,
    )
