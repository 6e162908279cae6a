"""How much a single run may use. Every limit has a default and can be set per run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunLimits:
    """Per-run resource limits.

    Fuel counts WebAssembly instructions (about 2e10 per second on one core); time spent
    inside host calls (moving a stage, sleeping) is free, which is why there is also a
    wall-clock ``deadline_s``. Time spent paused does not count against the deadline.
    """

    fuel: int = 10_000_000_000
    deadline_s: float = 600.0
    memory_bytes: int = 64 * 1024 * 1024
    """Linear memory; ``memory.grow`` beyond it returns -1 (the guest sees "no memory")."""
    stack_bytes: int = 512 * 1024
    """WebAssembly stack; deeper recursion traps with ``stack-overflow``."""
    log_lines_per_s: float = 200.0
    """Sustained log rate; a burst of ``log_burst`` lines passes, the rest is dropped and counted."""
    log_burst: int = 500
    log_line_bytes: int = 2000
    """Longer log lines are cut and marked."""
    max_results: int = 1_000_000
    max_frames_held: int = 8
    """Frames a guest may hold (``frame_snap`` without ``frame_release``) at once."""
    cleanup_share: float = 0.1
    """The guest's ``cleanup`` export gets this share of the run's fuel and deadline..."""
    cleanup_fuel: int = 2_000_000_000
    cleanup_deadline_s: float = 5.0
    """...but at most this much fuel and time, so a stuck cleanup cannot hold the end."""
    safe_state_timeout_s: float = 10.0
    """How long applying one instrument's safe state may take."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"run limit {f.name} must be a number > 0, got {value!r}")
        if self.cleanup_share > 1:
            raise ValueError(f"run limit cleanup_share must be at most 1, got {self.cleanup_share}")
        if self.memory_bytes > 4 * 1024**3:
            raise ValueError("run limit memory_bytes cannot exceed 4 GiB (32-bit WebAssembly)")

    @property
    def cleanup_budget(self) -> tuple[int, float]:
        """(fuel, seconds) for the guest's ``cleanup`` export."""
        return (
            max(1, min(int(self.fuel * self.cleanup_share), self.cleanup_fuel)),
            min(self.deadline_s * self.cleanup_share, self.cleanup_deadline_s),
        )

    def with_overrides(self, **overrides: float | int | None) -> RunLimits:
        """These limits with the non-None ``overrides`` applied (e.g. from CLI flags)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(
                f"unknown run limit(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
            )
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)
