"""Test doubles for the monitoring tests: a store stand-in (same protocol as the real store), a canary."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

# A secret that must never show up anywhere; characters chosen to differ in every encoding.
CANARY = "canary-Sekr3t/+=?&ü-9f8e7d"


class TTYStream(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@dataclass
class FakeStoreState:
    open_letters: dict[str, int] = field(default_factory=dict)
    oldest_age: dict[str, float] = field(default_factory=dict)
    times: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    intervals: dict[str, float] = field(default_factory=dict)
    configured: dict[str, float] = field(default_factory=dict)
    drift: dict[str, tuple[float, dict[str, int]]] = field(default_factory=dict)
    fail_with: Exception | None = None
    reads: int = 0

    def _read(self) -> None:
        self.reads += 1
        if self.fail_with is not None:
            raise self.fail_with

    def open_dead_letters_by_pipeline(self) -> dict[str, int]:
        self._read()
        return dict(self.open_letters)

    def oldest_open_dead_letter_age_by_pipeline(self) -> dict[str, float]:
        return dict(self.oldest_age)

    def last_run_times(self) -> dict[str, tuple[float | None, float | None]]:
        return dict(self.times)

    def schedule_intervals(self) -> dict[str, float]:
        return dict(self.intervals)

    def configured_times(self) -> dict[str, float]:
        return dict(self.configured)

    def last_drift(self) -> dict[str, tuple[float, dict[str, int]]]:
        return dict(self.drift)
