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

CRM_TO_ERP = """\
source: customer
target: customer
key: number
owns: [number, name, phone]
fields:
  number: {from: code}
  name: {from: name}
  phone: {from: phone}
"""
ERP_TO_CRM = """\
source: customer
target: customer
key: code
owns: [code, credit_limit, phone]
fields:
  code: {from: number}
  credit_limit: {from: credit_limit}
  phone: {from: phone}
"""
DIRECTIONS = ("crm_to_erp", "erp_to_crm")


def write_config(folder: Path, tag: str, rule: str, owner: str = "crm") -> Path:
    (folder / "crm_to_erp.yaml").write_text(CRM_TO_ERP, encoding="utf-8")
    (folder / "erp_to_crm.yaml").write_text(ERP_TO_CRM, encoding="utf-8")
    two_way = f"conflict_rule: {rule}, owner: {owner}"
    (folder / "hub.yaml").write_text(f"""\
store: {{url: "sqlite:///{folder / 'state.db'}"}}
systems:
  crm: {{connector: memory, settings: {{system: crm-{tag}, entities: {{customer: code}}}}}}
  erp: {{connector: memory, settings: {{system: erp-{tag}, entities: {{customer: number}}}}}}
pipelines:
  crm_to_erp:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: crm_to_erp.yaml
    two_way: {{reverse: erp_to_crm, fields: {{phone: phone}}, {two_way}}}
  erp_to_crm:
    source: {{system: erp, entity: customer}}
    target: {{system: crm, entity: customer}}
    mapping: erp_to_crm.yaml
    two_way: {{reverse: crm_to_erp, fields: {{phone: phone}}, {two_way}}}
""", encoding="utf-8")
    return folder / "hub.yaml"


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

    def __post_init__(self) -> None:
        self.crm: MemorySystem = memory_system(f"crm-{self.tag}")
        self.erp: MemorySystem = memory_system(f"erp-{self.tag}")
        self.crm.records.clear()
        self.erp.records.clear()
        # Writes the hub makes are stamped by the same shared clock (through each system's own clock).
        self.hub = Hub(load_config(write_config(self.folder, self.tag, self.rule, self.owner)))

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
