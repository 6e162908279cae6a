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
from typing import Any, Generic, TypeVar, cast, overload

from capabilities import InvalidRequest, Parameter, ParameterValue
from drivers.toolkit.connection import Connection
from drivers.toolkit.parameters import DeclaredParameters, ParameterDeclaration, choice_label
from drivers.toolkit.parsers import scpi_bool, scpi_string
from drivers.toolkit.validators import InRange, OneOf, Validator

T = TypeVar("T")
E = TypeVar("E", bound="Endpoint")

_Options = tuple[bool, str | None, Mapping[str, Any] | None, str | None, str | None]
"""(parameter, kind, choices, on_change, name) of a control or setting."""


class Endpoint(DeclaredParameters):
    """Anything that talks through a :class:`Connection`: an instrument or one channel.

    Its ``control``/``setting`` declarations are its parameters (``Configurable``), see
    :mod:`drivers.toolkit.parameters`.
    """

    connection: Connection

    @property
    def label(self) -> str:
        """How messages name this endpoint."""
        return self.connection.name

    def command_fields(self) -> Mapping[str, object]:
        """Named fields filled into command templates (``{ch}``, ``{addr}``)."""
        return {}

    def parameter_owner(self) -> str:
        return self.label

    def parameter_fields(self) -> Mapping[str, object]:
        return self.command_fields()


class from_attribute:
    """A validator looked up on the endpoint, for ranges that differ per channel or model."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def resolve(self, endpoint: Endpoint) -> Validator[Any]:
        validator: Validator[Any] = getattr(endpoint, self.attribute)
        return validator


def _resolve(
    validator: Validator[Any] | from_attribute | None, endpoint: Endpoint
) -> Validator[Any] | None:
    return validator.resolve(endpoint) if isinstance(validator, from_attribute) else validator


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
        validator = _resolve(self.validator, endpoint)
        if validator is not None:
            validator.check(value, f"{endpoint.label}: {name}")
        formatted = value if self.format is None else self.format(value)
        command = _format(self.command, endpoint, formatted)
        await endpoint.connection.write(command, check_errors=self.check_errors)


#: What a reply parser says about the parameter's kind.
_KIND_OF_PARSE: dict[object, str] = {
    float: "float",
    int: "int",
    bool: "bool",
    scpi_bool: "bool",
    str: "text",
    scpi_string: "text",
}
_KIND_OF_FORMAT: dict[object, str] = {None: "float", float: "float", int: "int", str: "text"}


class _Declaration:
    name = "<unnamed>"
    unit = ""
    doc = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class _ParameterDeclaration(_Declaration, ParameterDeclaration):
    """A ``control`` or ``setting``: a parameter unless declared with ``parameter=False``."""

    write: _Write[Any]
    readable = False

    def _parameter_options(
        self,
        parameter: bool,
        kind: str | None,
        choices: Mapping[str, Any] | None,
        on_change: str | None,
        name: str | None,
        inferred: str | None,
    ) -> None:
        self.given_name = name
        self.parameter = parameter
        self.choices = dict(choices or {})
        self.on_change = on_change
        validator = self.write.validator
        if (kind is None and self.choices) or (kind is None and isinstance(validator, OneOf)):
            kind = "choice"
        elif kind is None and not isinstance(validator, from_attribute):
            # a from_attribute validator may still make it a choice: decided per endpoint
            kind = inferred or ("float" if isinstance(validator, InRange) else None)
        if parameter and kind is None and not isinstance(validator, from_attribute):
            raise TypeError(
                f"{self.write.command!r}: cannot tell the parameter kind from its parse/format;"
                " give kind= (float, int, bool, text, choice) or parameter=False"
            )
        self.kind = kind
        self.inferred = inferred

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.given_name or name

    def describe(self, owner: DeclaredParameters) -> Parameter | None:
        if not self.parameter:
            return None
        assert isinstance(owner, Endpoint)
        validator = _resolve(self.write.validator, owner)
        kind = self.kind
        choices: tuple[str, ...] = tuple(self.choices)
        if kind is None:  # from_attribute: decided by what it resolves to
            kind = "choice" if isinstance(validator, OneOf) else self.inferred
        if kind is None:
            raise TypeError(
                f"{type(owner).__name__}.{self.name}: its validator gives no parameter kind;"
                " give kind= or parameter=False"
            )
        if kind == "choice" and not choices and isinstance(validator, OneOf):
            choices = tuple(str(v) for v in validator.values)
        low = high = None
        unit = self.unit
        if isinstance(validator, InRange):
            low, high = float(validator.low), float(validator.high)
            unit = unit or validator.unit
        return Parameter(
            name=self.name,
            kind=kind,
            unit=unit,
            low=low,
            high=high,
            choices=choices,
            writable=True,
            readable=self.readable,
            description=self.doc or f"sent as {self.write.command!r}",
            channel=owner.parameter_channel(),
        )

    def raw(self, owner: Endpoint, value: ParameterValue) -> object:
        """What driver code would pass to ``set()`` for the parameter value ``value``."""
        if self.choices:
            return self.choices[str(value)]
        validator = _resolve(self.write.validator, owner)
        if isinstance(validator, OneOf) and self.kind in (None, "choice"):
            return next(v for v in validator.values if str(v) == value)
        return value

    def label(self, owner: Endpoint, raw: object, command: str) -> ParameterValue:
        """The parameter value of what the driver's ``get()`` returned."""
        parameter = self.describe(owner)
        assert parameter is not None
        if parameter.kind != "choice":
            return cast(ParameterValue, raw)
        label = choice_label(self.choices, raw) if self.choices else str(raw)
        if label is None or label not in parameter.choices:
            raise owner.connection.unexpected(
                _format(command, owner), str(raw), f"one of: {', '.join(parameter.choices)}"
            )
        return label

    async def write_parameter(self, owner: DeclaredParameters, value: ParameterValue) -> None:
        assert isinstance(owner, Endpoint)
        await self.write.run(owner, self.name, self.raw(owner, value))
        await self.changed(owner)


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


class Setting(_ParameterDeclaration, Generic[T]):
    """A write-only property or a command with an argument (see :func:`setting`); as a
    parameter it is writable, not readable."""

    def __init__(self, write: _Write[T], doc: str, options: _Options) -> None:
        self.write = write
        self.unit = write.unit
        self.doc = doc
        inferred = _KIND_OF_FORMAT.get(write.format)
        self._parameter_options(*options, inferred=inferred)

    async def read_parameter(self, owner: DeclaredParameters) -> ParameterValue:
        raise InvalidRequest(f"{self.name} is write-only")  # DeclaredParameters says so first

    @overload
    def __get__(self, endpoint: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, endpoint: Endpoint, owner: type) -> BoundSetting[T]: ...
    def __get__(self, endpoint: Endpoint | None, owner: type) -> Setting[T] | BoundSetting[T]:
        return self if endpoint is None else BoundSetting(self, endpoint)


class Control(_ParameterDeclaration, Generic[T]):
    """A read-write property (see :func:`control`)."""

    readable = True

    def __init__(self, query: _Query[T], write: _Write[T], doc: str, options: _Options) -> None:
        self.query = query
        self.write = write
        self.unit = write.unit
        self.doc = doc
        self._parameter_options(*options, inferred=_KIND_OF_PARSE.get(query.parse))

    async def read_parameter(self, owner: DeclaredParameters) -> ParameterValue:
        assert isinstance(owner, Endpoint)
        return self.label(owner, await self.query.run(owner), self.query.command)

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
    parameter: bool = True,
    kind: str | None = None,
    choices: Mapping[str, float] | None = None,
    on_change: str | None = None,
    name: str | None = None,
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
    parameter: bool = True,
    kind: str | None = None,
    choices: Mapping[str, T] | None = None,
    on_change: str | None = None,
    name: str | None = None,
) -> Setting[T]: ...
def setting(
    command: str,
    *,
    format: Callable[[Any], object] | None = None,
    validator: Validator[Any] | from_attribute | None = None,
    check_errors: bool = True,
    unit: str = "",
    doc: str = "",
    parameter: bool = True,
    kind: str | None = None,
    choices: Mapping[str, Any] | None = None,
    on_change: str | None = None,
    name: str | None = None,
) -> Setting[Any]:
    """A value sent with ``command`` (a format template); validated before anything is sent.

    It is a write-only parameter unless ``parameter=False`` (see :func:`control`).
    """
    return Setting(
        _Write(command, format, validator, check_errors, unit),
        doc,
        (parameter, kind, choices, on_change, name),
    )


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
    parameter: bool = True,
    kind: str | None = None,
    choices: Mapping[str, float] | None = None,
    on_change: str | None = None,
    name: str | None = None,
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
    parameter: bool = True,
    kind: str | None = None,
    choices: Mapping[str, T] | None = None,
    on_change: str | None = None,
    name: str | None = None,
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
    parameter: bool = True,
    kind: str | None = None,
    choices: Mapping[str, Any] | None = None,
    on_change: str | None = None,
    name: str | None = None,
) -> Control[Any]:
    """A value read with ``query`` and set with ``command``: a :func:`measurement` and a
    :func:`setting` in one line.

    It is also a parameter of the endpoint (docs/writing-a-driver.md, "Parameters"): its
    kind comes from ``parse`` (``float``, ``int``, ``scpi_bool``, ``str``) unless ``kind``
    says otherwise, its range from an ``in_range`` validator, its choices from a
    ``one_of`` validator or from ``choices`` (label shown to people -> raw value; the
    bound accessor's ``get()``/``set()`` keep using raw values), its description from
    ``doc``; ``on_change`` names a method run after each parameter set; ``name`` is the
    parameter's name where it differs from the attribute's. Declare a command
    that backs a capability method with ``parameter=False``: a parameter must not bypass
    a capability a share restricts (docs/security.md).
    """
    return Control(
        _Query(query, parse, prefix, expected),
        _Write(command, format, validator, check_errors, unit),
        doc,
        (parameter, kind, choices, on_change, name),
    )
