"""Which instruments a run may open, and with which capabilities.

A script is handed capabilities, never the lab: ``cap_get("stage", MOVABLE)`` succeeds
only if the run was granted ``Movable`` on ``stage``. That keeps a borrowed scan script
from switching off the cryostat, and makes a run's reach visible before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from capabilities import CAPABILITIES

ALL = "*"


@dataclass(frozen=True)
class Grants:
    """instrument name -> capability names (``"*"`` for every capability it has).

    The instrument name ``"*"`` grants those capabilities on every instrument.
    """

    allowed: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def everything(cls) -> Grants:
        return cls({ALL: frozenset({ALL})})

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Grants:
        """From ``"stage:Movable"``, ``"stage:Movable,Stoppable"``, ``"meter"`` (every
        capability of meter) or ``"*"`` (everything), as given to ``labd run --grant``."""
        allowed: dict[str, set[str]] = {}
        for spec in specs:
            instrument, _, caps = spec.partition(":")
            instrument = instrument.strip()
            if not instrument:
                raise ValueError(f"grant {spec!r} names no instrument; write e.g. stage:Movable")
            names = {c.strip() for c in caps.split(",") if c.strip()} if caps else {ALL}
            for name in names - {ALL}:
                if name not in CAPABILITIES:
                    raise ValueError(
                        f"grant {spec!r}: unknown capability {name!r}; known: {', '.join(sorted(CAPABILITIES))}"
                    )
            allowed.setdefault(instrument, set()).update(names)
        return cls({k: frozenset(v) for k, v in allowed.items()})

    def allows(self, instrument: str, capability: str) -> bool:
        for key in (instrument, ALL):
            granted = self.allowed.get(key, frozenset())
            if capability in granted or ALL in granted:
                return True
        return False

    def describe(self) -> str:
        if not self.allowed:
            return "nothing"
        return "; ".join(
            f"{instrument}:{','.join(sorted(caps))}"
            for instrument, caps in sorted(self.allowed.items())
        )
