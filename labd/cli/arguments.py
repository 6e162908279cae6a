"""Argument types of the ``labd`` subcommands: every number, address and input file a
command line names is checked while it is parsed, so a wrong one is refused in one line
(exit status 2) before anything connects or starts.

Numbers are described with :class:`labd.values.Number`, as the lab config's are: finite,
within range, and, where they have a unit, also accepted as a quantity (``--seconds "2
min"``). This module stays light: it is imported for every ``labd`` start.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from labd.values import BadValue, Number, readable_file


def number(spec: Number) -> Callable[[str], float]:
    """An argparse ``type`` for a number that ``spec`` accepts."""

    def parse(text: str) -> float:
        try:
            return spec.check(text)
        except BadValue as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def whole(spec: Number) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number that ``spec`` (with ``whole=True``) accepts."""
    check = number(spec)

    def parse(text: str) -> int:
        return int(check(text))

    return parse


def address(text: str) -> str:
    """A daemon address (``--connect``): a socket path, HOST:PORT, tcp:// or tls://."""
    from labd.contract.address import parse_address

    try:
        parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def input_file(text: str) -> str:
    """A file the command reads (a certificate, an actions file, a lab config)."""
    try:
        readable_file(text)
    except BadValue as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


class Interval(argparse.Action):
    """``--range LOW HIGH``: two numbers (``nargs=2``, checked by ``type``), LOW below HIGH."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list)
        low, high = values
        if not low < high:
            parser.error(f"argument {option_string}: LOW ({low:g}) must be below HIGH ({high:g})")
        setattr(namespace, self.dest, (low, high))


class ParameterRange(argparse.Action):
    """``--param-range PARAM LOW HIGH`` (repeatable): a name and two finite numbers, LOW
    not above HIGH; appends ``(PARAM, (LOW, HIGH))``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list)
        name, *texts = values
        try:
            low, high = (Number().check(text) for text in texts)
        except BadValue as e:
            parser.error(f"argument {option_string} {name}: {e}")
        if not low <= high:
            parser.error(f"argument {option_string} {name}: LOW ({low:g}) is above HIGH ({high:g})")
        getattr(namespace, self.dest).append((name, (low, high)))
