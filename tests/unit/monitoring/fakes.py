"""A store stand-in for the exposition tests (the real store implements the same protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeStoreState:
    open_letters: dict[str, int] = field(default_factory=dict)
    oldest_age: dict[str, float] = field(default_factory=dict)
    times: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    intervals: dict[str, float] = field(default_factory=dict)
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
