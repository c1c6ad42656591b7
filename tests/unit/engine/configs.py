"""Config files for engine tests that need the whole runtime (Hub, CLI) over memory systems."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def memory_pipeline_config(tmp_path: Path, name: str, mapping: str, *, source: tuple[str, str, str],
                           target: tuple[str, str, str], options: str = "") -> Path:
    """A config with one pipeline between two memory systems: (system name, entity, key field) per side.

    `options` are extra pipeline lines, e.g. "write_back: {field: x, value: key}".
    """
    (tmp_path / "m.yaml").write_text(mapping, encoding="utf-8")
    extra = "".join(f"    {line}\n" for line in options.splitlines() if line.strip())
    path = tmp_path / "hub.yaml"
    path.write_text(f"""\
store: {{url: "sqlite:///state.db"}}
systems:
  src: {{connector: memory, settings: {{system: {source[0]}, entities: {{{source[1]}: {source[2]}}}}}}}
  dst: {{connector: memory, settings: {{system: {target[0]}, entities: {{{target[1]}: {target[2]}}}}}}}
pipelines:
  {name}:
    source: {{system: src, entity: {source[1]}}}
    target: {{system: dst, entity: {target[1]}}}
    mapping: m.yaml
{extra}""", encoding="utf-8")
    return path


def customer_mapping(key: str, fields: Mapping[str, str], *, filters: str = "") -> str:
    """A customer -> customer mapping keyed on `key` that maps and owns `fields` (target field: source
    field), in their order; `filters` is a `filter:` block as written into the file, or none."""
    mapped = "".join(f"  {target}: {{from: {source}}}\n" for target, source in fields.items())
    return (f"source: customer\ntarget: customer\nkey: {key}\nowns: [{', '.join(fields)}]\n"
            f"{filters}fields:\n{mapped}")


CRM_TO_ERP = customer_mapping("number", {"number": "code", "name": "name", "phone": "phone"})
ERP_TO_CRM = customer_mapping("code", {"code": "number", "credit_limit": "credit_limit", "phone": "phone"})
TWO_WAY_DIRECTIONS = ("crm_to_erp", "erp_to_crm")


def two_way_config(folder: Path, tag: str, rule: str, owner: str = "crm", *, lag_seconds: float | None = None) -> Path:
    """A two-way CRM ↔ ERP customer pair between memory systems `crm-TAG` and `erp-TAG`: the CRM owns
    `name`, the ERP owns `credit_limit`, `phone` is two-way under `rule`. `lag_seconds` sets both
    pipelines' overlap window (and so the pair's clock-skew allowance)."""
    (folder / "crm_to_erp.yaml").write_text(CRM_TO_ERP, encoding="utf-8")
    (folder / "erp_to_crm.yaml").write_text(ERP_TO_CRM, encoding="utf-8")
    two_way = f"conflict_rule: {rule}, owner: {owner}"
    lag = "" if lag_seconds is None else f"\n    lag_seconds: {lag_seconds}"
    path = folder / "hub.yaml"
    path.write_text(f"""\
store: {{url: "sqlite:///{folder / 'state.db'}"}}
systems:
  crm: {{connector: memory, settings: {{system: crm-{tag}, entities: {{customer: code}}}}}}
  erp: {{connector: memory, settings: {{system: erp-{tag}, entities: {{customer: number}}}}}}
pipelines:
  crm_to_erp:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: crm_to_erp.yaml
    two_way: {{reverse: erp_to_crm, fields: {{phone: phone}}, {two_way}}}{lag}
  erp_to_crm:
    source: {{system: erp, entity: customer}}
    target: {{system: crm, entity: customer}}
    mapping: erp_to_crm.yaml
    two_way: {{reverse: crm_to_erp, fields: {{phone: phone}}, {two_way}}}{lag}
""", encoding="utf-8")
    return path
