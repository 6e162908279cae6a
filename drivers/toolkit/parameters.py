"""Parameters from declarations: every setting a driver declares is a named, typed parameter.

A driver's settings reach every surface (CLI, clients, scripts, GUI) through
:class:`capabilities.Configurable` (docs/parameters.md). Writing ``parameters()``,
``get_parameter`` and ``set_parameter`` by hand in every driver would be the same code
each time, so :class:`DeclaredParameters` implements them once from the class's
declarations:

* the toolkit's ``control(...)`` and ``setting(...)`` (:mod:`drivers.toolkit.properties`):
  kind from the parser, range and choices from the validator, unit and description from
  the declaration; ``parameter=False`` leaves one out (docs/writing-a-driver.md,
  "Parameters");
* :func:`value`, an in-memory setting for drivers without a wire command (the simulators):
  the attribute reads the current value; a parameter set checks it, stores it and calls
  the ``on_change`` hook.

A class adds computed parameters by overriding the three methods and handing the names
it does not know to ``super()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar, cast, overload

from capabilities import InvalidRequest, Parameter, ParameterValue
from capabilities.parameters import find

V = TypeVar("V", bool, int, float, str)


class ParameterDeclaration:
    """A class attribute that is also a parameter (collected by :class:`DeclaredParameters`)."""

    name = "<unnamed>"
    """The parameter's name: the attribute's, unless the declaration gave one."""
    given_name: str | None = None
    on_change: str | None = None
    """The name of a method of the owner called (and awaited, if async) after each
    parameter set; None: none."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.given_name or name

    def describe(self, owner: DeclaredParameters) -> Parameter | None:
        """The parameter as ``owner`` has it; None: this declaration is not a parameter."""
        raise NotImplementedError

    async def read_parameter(self, owner: DeclaredParameters) -> ParameterValue:
        raise NotImplementedError

    async def write_parameter(self, owner: DeclaredParameters, value: ParameterValue) -> None:
        raise NotImplementedError

    async def changed(self, owner: DeclaredParameters) -> None:
        """Run the ``on_change`` hook, if any."""
        if self.on_change is None:
            return
        result = getattr(owner, self.on_change)()
        if inspect.isawaitable(result):
            await result


_DECLARATIONS: dict[type, dict[str, ParameterDeclaration]] = {}


class DeclaredParameters:
    """``capabilities.Configurable`` from the class's parameter declarations.

    ``parameters()`` does no I/O (the config checker lists them before anything is opened:
    docs/parameters.md); ``set_parameter`` checks the value against the parameter again
    (a driver is also called directly, not only through the daemon), so a refused value
    never reaches the instrument.
    """

    def parameter_channel(self) -> str:
        """The channel the parameters belong to (``Parameter.channel``); empty: none."""
        return ""

    def parameter_owner(self) -> str:
        """How messages about a parameter name its owner."""
        return type(self).__name__

    def parameter_fields(self) -> Mapping[str, object]:
        """Fields filled into a :func:`value`'s ``unit`` and ``doc`` (``"{unit}/s"``)."""
        return {}

    async def parameter_call(self, method: str) -> None:
        """Runs before each get and set reaches a declaration (simulators: fault injection)."""

    @classmethod
    def parameter_declarations(cls) -> Mapping[str, ParameterDeclaration]:
        """The class's declarations by name, base classes' first, in definition order."""
        found = _DECLARATIONS.get(cls)
        if found is None:
            by_attribute: dict[str, ParameterDeclaration] = {}
            for klass in reversed(cls.__mro__):
                for attribute, declared in vars(klass).items():
                    if isinstance(declared, ParameterDeclaration):
                        by_attribute[attribute] = declared
                    else:
                        by_attribute.pop(attribute, None)  # overridden by something else
            found = _DECLARATIONS[cls] = {d.name: d for d in by_attribute.values()}
        return found

    def declared_parameters(self) -> list[Parameter]:
        """The declared parameters (what ``parameters()`` returns unless overridden)."""
        described = (d.describe(self) for d in self.parameter_declarations().values())
        return [p for p in described if p is not None]

    async def parameters(self) -> Sequence[Parameter]:
        return self.declared_parameters()

    async def get_parameter(self, name: str) -> ParameterValue:
        parameter = find(list(await self.parameters()), name, self.parameter_owner())
        if not parameter.readable:
            raise InvalidRequest(
                f"{self.parameter_owner()}: {name} is write-only (the instrument cannot report"
                " it); the daemon records every set on the instrument's parameters stream"
            )
        declaration = self._declaration(name, "get_parameter")
        await self.parameter_call("get_parameter")
        return await declaration.read_parameter(self)

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        parameter = find(list(await self.parameters()), name, self.parameter_owner())
        if not parameter.writable:
            raise InvalidRequest(f"{self.parameter_owner()}: {name} is read-only")
        checked = parameter.check(value)
        declaration = self._declaration(name, "set_parameter")
        await self.parameter_call("set_parameter")
        await declaration.write_parameter(self, checked)

    def _declaration(self, name: str, method: str) -> ParameterDeclaration:
        declaration = self.parameter_declarations().get(name)
        if declaration is None:
            raise NotImplementedError(
                f"{type(self).__name__} lists parameter {name!r} but neither declares it nor"
                f" handles it in {method}(); a driver bug"
            )
        return declaration


def _describe_number(
    owner: DeclaredParameters, bound: float | str | None, what: str
) -> float | None:
    if isinstance(bound, str):  # the name of an attribute of the owner
        resolved = getattr(owner, bound)
        if not isinstance(resolved, int | float) or isinstance(resolved, bool):
            raise TypeError(f"{type(owner).__name__}.{bound} ({what}) is not a number")
        return float(resolved)
    return bound


def _kind_of(default: object, choices: Sequence[str]) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "choice" if choices else "text"


class Value(ParameterDeclaration, Generic[V]):
    """An in-memory setting (see :func:`value`)."""

    def __init__(
        self,
        default: V,
        *,
        kind: str | None,
        unit: str,
        low: float | str | None,
        high: float | str | None,
        choices: Sequence[str],
        doc: str,
        on_change: str | None,
        writable: bool,
        name: str | None,
    ) -> None:
        self.given_name = name
        self.default: V = default
        self.kind = kind or _kind_of(default, choices)
        self.unit = unit
        self.low = low
        self.high = high
        self.choices = tuple(choices)
        self.doc = doc
        self.on_change = on_change
        self.writable = writable
        self._slot = ""
        # Refuse a default the parameter itself would refuse, at class creation.
        if not isinstance(low, str) and not isinstance(high, str):
            Parameter("default", self.kind, unit, low, high, self.choices).check(default)

    def __set_name__(self, owner: type, name: str) -> None:
        super().__set_name__(owner, name)
        self._slot = f"_parameter_{name}"  # by attribute: unique in the class

    @overload
    def __get__(self, instance: None, owner: type) -> Value[V]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> V: ...
    def __get__(self, instance: object | None, owner: type) -> Value[V] | V:
        if instance is None:
            return self
        return cast(V, instance.__dict__.get(self._slot, self.default))

    def __set__(self, instance: DeclaredParameters, value: V) -> None:
        """Assign (checked, no hook): how a constructor sets the value it was given."""
        parameter = self.describe(instance)
        instance.__dict__[self._slot] = parameter.check(value)

    def describe(self, owner: DeclaredParameters) -> Parameter:
        fields = owner.parameter_fields()
        return Parameter(
            name=self.name,
            kind=self.kind,
            unit=self.unit.format(**fields),
            low=_describe_number(owner, self.low, "low"),
            high=_describe_number(owner, self.high, "high"),
            choices=self.choices,
            writable=self.writable,
            description=self.doc.format(**fields),
            channel=owner.parameter_channel(),
        )

    async def read_parameter(self, owner: DeclaredParameters) -> ParameterValue:
        value: ParameterValue = self.__get__(owner, type(owner))
        return value

    async def write_parameter(self, owner: DeclaredParameters, value: ParameterValue) -> None:
        """Store, then run the hook; a hook that raises (it refuses the value in the light
        of other settings) leaves the previous value in place."""
        had = self._slot in owner.__dict__
        previous = owner.__dict__.get(self._slot)
        owner.__dict__[self._slot] = value
        try:
            await self.changed(owner)
        except BaseException:
            if had:
                owner.__dict__[self._slot] = previous
            else:
                del owner.__dict__[self._slot]
            raise


def value(
    default: V,
    *,
    kind: str | None = None,
    unit: str = "",
    low: float | str | None = None,
    high: float | str | None = None,
    choices: Sequence[str] = (),
    doc: str,
    on_change: str | None = None,
    writable: bool = True,
    name: str | None = None,
) -> Value[V]:
    """A setting held in memory, declared as a class attribute::

        class SimStage(SimInstrument):
            velocity = value(20.0, unit="{unit}/s", low=1e-3, high=1e4,
                             doc="maximum speed of the next move", on_change="_replan_speed")

    The kind comes from ``default`` (``bool``, ``int``, ``float``; ``str`` is ``text``,
    or ``choice`` with ``choices``). ``low``/``high`` may name a numeric attribute of the
    instance (a range that depends on the config). ``unit`` and ``doc`` are formatted
    with the owner's ``parameter_fields()``. Reading the attribute gives the current
    value; assigning it (in the constructor) checks it against the parameter without the
    hook; ``set_parameter`` checks, stores and calls ``on_change`` (a method name).
    ``writable=False`` makes a read-only parameter (a state the simulation sets itself);
    ``name`` names the parameter where the attribute's name is taken (by a capability
    method: ``_wavelength = value(..., name="wavelength")`` next to ``wavelength()``).
    """
    return Value(
        default,
        kind=kind,
        unit=unit,
        low=low,
        high=high,
        choices=choices,
        doc=doc,
        on_change=on_change,
        writable=writable,
        name=name,
    )


def choice_label(choices: Mapping[str, Any], raw: object) -> str | None:
    """The label whose raw value is ``raw``, or None."""
    return next((label for label, r in choices.items() if r == raw), None)
