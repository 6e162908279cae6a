"""What every simulated instrument has: a name in the world, a lifecycle, and faults."""

from __future__ import annotations

from drivers.sim.faults import Faults
from drivers.sim.world import World, current_world
from drivers.toolkit.parameters import DeclaredParameters


class SimInstrument(DeclaredParameters):
    """Base of the simulated instruments.

    ``name`` is the key under which the instrument meets its siblings in
    :mod:`drivers.sim.world`; it should equal the instrument's name in the lab config
    (each class defaults to the name the default lab uses). ``open()`` joins the world of
    the running Trio program (:attr:`world`). Subclasses call
    ``await self._call("method")`` first thing in every capability method, which refuses
    calls before ``open()`` and applies injected faults.

    Settings that change the simulated physics are parameters, declared with
    :func:`drivers.toolkit.value` (``Configurable``, docs/drivers/sim.md); their gets and
    sets count as capability calls and fault like them.
    """

    def __init__(
        self,
        name: str,
        *,
        fail_after_calls: int | None,
        hang_after_calls: int | None,
        disconnect_after_calls: int | None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self._faults = Faults(
            name,
            fail_after_calls=fail_after_calls,
            hang_after_calls=hang_after_calls,
            disconnect_after_calls=disconnect_after_calls,
        )
        self._world: World | None = None

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError(f"{self.name} has not been opened: it is not in a world yet")
        return self._world

    async def open(self) -> None:
        self._world = current_world()
        self._faults.opened()

    async def close(self) -> None:
        self._faults.closed()

    async def inject_fault(self, kind: str) -> None:
        """``"raise"``, ``"hang"``, ``"disconnect"`` or ``"clear"``; see :mod:`drivers.sim.faults`."""
        self._faults.inject(kind)

    async def _call(self, method: str) -> None:
        await self._faults.before_call(method)

    def parameter_owner(self) -> str:
        return self.name

    async def parameter_call(self, method: str) -> None:
        await self._call(method)


def check_positive(owner: str, **values: float) -> None:
    """Reject non-positive physical parameters at construction, naming the parameter."""
    for param, value in values.items():
        if not _is_number(value) or not value > 0:
            raise ValueError(f"{owner}: {param} must be a number > 0, got {value!r}")


def check_non_negative(owner: str, **values: float) -> None:
    """Reject negative amplitudes, noises and offsets at construction, naming the parameter."""
    for param, value in values.items():
        if not _is_number(value) or not value >= 0:
            raise ValueError(f"{owner}: {param} must be a number >= 0, got {value!r}")


def _is_number(value: object) -> bool:
    # TOML gives bools and strings as readily as numbers; `True > 0` must not pass.
    return isinstance(value, int | float) and not isinstance(value, bool)
