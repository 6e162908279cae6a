"""What the settings section shows for each parameter, decided without a display.

The section (:class:`gui.panels.SettingsView`) is generated from the instrument's
parameter list (docs/parameters.md): which widget a kind gets, what text stands in the
widget for a value, what goes back to the daemon when a person applies it, and the short
note beside it. Kept here, apart from the drawing, so it is tested without a window.

Numbers are typed as text on purpose: the daemon converts units (``"1.064 um"`` for a
parameter in nm, ``"20 ms"`` for one in s), so a person writes a value as they think of
it and the daemon's one-line refusal says what is wrong. Nothing is clipped or rounded
here: a value out of range is the daemon's to refuse, never the GUI's to change.
"""

from __future__ import annotations

from collections.abc import Sequence

from capabilities import Parameter, ParameterValue
from capabilities.parameters import text_of

WIDGETS = {"float": "input", "int": "input", "text": "input", "bool": "checkbox", "choice": "combo"}
"""The widget each kind of parameter gets."""


def widget(parameter: Parameter) -> str:
    """``"input"`` (numbers and text, applied with Set or Enter), ``"checkbox"`` or
    ``"combo"`` (applied as soon as they change)."""
    return WIDGETS[parameter.kind]


def display(parameter: Parameter, value: ParameterValue) -> str | bool:
    """``value`` as its widget holds it: text for inputs and combos, a bool for a checkbox.

    A whole number arrives over the wire as a float; an ``int`` parameter shows it
    without the ``.0``.
    """
    if parameter.kind == "bool":
        return bool(value)
    if parameter.kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return text_of(value)


def to_send(parameter: Parameter, shown: object) -> ParameterValue:
    """What to send for the widget's content ``shown``; ValueError when there is nothing.

    A number goes as the text typed (``"1064"``, ``"1.064 um"``): the daemon parses it
    and converts the unit (docs/parameters.md, "Setting one").
    """
    if parameter.kind == "bool":
        return bool(shown)
    text = str(shown)
    if parameter.kind in ("float", "int"):
        text = text.strip()
        if not text:
            example = f"1 {parameter.unit}" if parameter.unit else "1"
            raise ValueError(f"{parameter.name}: type a number (e.g. {example})")
    return text


def note(parameter: Parameter) -> str:
    """The grey text beside the widget: the accepted range and the access, if limited."""
    parts = []
    if parameter.kind in ("float", "int") and (
        parameter.low is not None or parameter.high is not None
    ):
        parts.append(parameter.span())
    if not parameter.writable:
        parts.append("read-only")
    if not parameter.readable:
        parts.append("write-only: shows the last value set")
    return "  ".join(parts)


def tooltip(parameter: Parameter) -> str:
    """The description, and what the parameter accepts (on hover)."""
    lines = [parameter.description] if parameter.description else []
    lines.append(f"{parameter.kind}: {parameter.span()}")
    if parameter.channel:
        lines.append(f"channel {parameter.channel}")
    return "\n".join(lines)


def same_rows(a: Sequence[Parameter], b: Sequence[Parameter]) -> bool:
    """Whether the rows drawn for ``a`` also fit ``b`` (same parameters, same description)."""
    return list(a) == list(b)
