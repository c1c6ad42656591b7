"""A two-way CRM ↔ ERP customer pair over memory systems on one shared clock, for the two-way tests.

The CRM owns `name`, the ERP owns `credit_limit`, `phone` is two-way. `World.edit` stamps each change
with the shared clock (plus a per-side skew), so a test knows which edit was truly the newest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from erphub.config.loader import load_config
from erphub.connectors.memory import MemorySystem, memory_system
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from tests.unit.engine.configs import TWO_WAY_DIRECTIONS, two_way_config

DIRECTIONS = TWO_WAY_DIRECTIONS


@dataclass
class World:
    """Both systems, the hub, and the truth: the last edit of each field on each side, by the shared clock."""

    tag: str
    folder: Path
    rule: str
    owner: str = "crm"
    skew: dict[str, timedelta] = field(default_factory=dict)  # side -> how far its clock runs behind
    now: datetime = datetime(2026, 3, 1, tzinfo=UTC)
    last_phone_edit: dict[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)
    lag_seconds: float | None = None  # both pipelines' overlap window: the pair's clock-skew allowance

    def __post_init__(self) -> None:
        self.crm: MemorySystem = memory_system(f"crm-{self.tag}")
        self.erp: MemorySystem = memory_system(f"erp-{self.tag}")
        self.crm.records.clear()
        self.erp.records.clear()
        # Writes the hub makes are stamped by the same shared clock (through each system's own clock).
        self.hub = Hub(load_config(two_way_config(self.folder, self.tag, self.rule, self.owner,
                                                  lag_seconds=self.lag_seconds)))

    def system(self, side: str) -> MemorySystem:
        return self.crm if side == "crm" else self.erp

    def tick(self) -> datetime:
        # One clock: never behind a time either system already stamped (the hub's writes tick them too).
        self.now = max([self.now] + [self.system(side).clock + self.skew.get(side, timedelta(0))
                                     for side in ("crm", "erp")]) + timedelta(seconds=1)
        for side in ("crm", "erp"):
            self.system(side).clock = self.now - self.skew.get(side, timedelta(0))
        return self.now

    def key(self, side: str) -> str:
        return "code" if side == "crm" else "number"

    def record(self, side: str, code: str) -> Any:
        return next(r for r in self.system(side).all("customer") if str(r.data[self.key(side)]) == code)

    def seed(self, codes: list[str]) -> None:
        for code in codes:
            self.tick()
            self.crm.put("customer", {"code": code, "name": f"客户{code}", "phone": f"P0-{code}"})
            self.last_phone_edit[("crm", code)] = (self.now, f"P0-{code}")

    def edit(self, side: str, code: str, field_name: str, value: Any) -> None:
        """One person's edit on one side, stamped by that side's (possibly skewed) clock."""
        self.tick()
        system, record = self.system(side), self.record(side, code)
        system.put("customer", {**record.data, field_name: value}, record_id=record.id,
                   updated_at=self.now - self.skew.get(side, timedelta(0)))
        if field_name == "phone":
            self.last_phone_edit[(side, code)] = (self.now, value)

    def run(self, direction: str) -> int:
        self.tick()
        counts = run_pipeline(self.hub.pipeline(direction), self.hub.store).counts
        return counts["created"] + counts["updated"]

    def run_both(self) -> int:
        return sum(self.run(direction) for direction in DIRECTIONS)

    def phones(self, code: str) -> tuple[Any, Any]:
        return self.record("crm", code).data.get("phone"), self.record("erp", code).data.get("phone")

    def newest_phone(self, code: str) -> Any:
        edits = [self.last_phone_edit[(side, code)] for side in ("crm", "erp") if (side, code) in self.last_phone_edit]
        return max(edits)[1]

    def close(self) -> None:
        self.hub.close()
