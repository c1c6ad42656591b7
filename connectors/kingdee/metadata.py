"""QueryBusinessInfo form metadata -> the snapshot fields of one form (no I/O).

The metadata lists the form's entities (`FBillHead`, sub-heads, entries) and their fields by Key,
with a multilingual Name, an ElementType, MustInput and, for the customer's own fields, keys that
start with `F_` (K/3 Cloud's rule for custom fields; vendor-gaps.md, Kingdee). Kept: the fields the
connector reads and writes for the entity, and every custom header field.
"""

from __future__ import annotations

from typing import Any

from erphub.connectors.discovery import field_info
from erphub.connectors.kingdee.schema import Shape

READ_ONLY_KEYS = frozenset({"fmodifydate", "fcreatedate", "fforbidstatus"})


def _caption(meta_field: dict[str, Any]) -> str | None:
    names = meta_field.get("Name")
    if isinstance(names, list):
        for item in names:
            if isinstance(item, dict) and item.get("Key") in (2052, "2052"):
                return str(item.get("Value"))
    return str(names) if isinstance(names, str) else None


def _info(shape: Shape, meta_field: dict[str, Any], ref: bool) -> dict[str, Any]:
    key = str(meta_field.get("Key"))
    server_side = key.lower() in READ_ONLY_KEYS or key == shape.status_key
    return field_info(
        "reference" if ref else str(meta_field.get("ElementType") or "text"),
        label=_caption(meta_field),
        createable=not server_side,
        updateable=not server_side,
        custom=key.startswith("F_"),
        required=bool(meta_field.get("MustInput")),
        reference=meta_field.get("LookUpObject") if ref else None,
    )


def form_fields(shape: Shape, entrys: list[Any]) -> dict[str, Any]:
    by_entity: dict[str, dict[str, dict[str, Any]]] = {}
    for entity in entrys:
        if isinstance(entity, dict):
            by_entity[str(entity.get("Key"))] = {
                str(f.get("Key")).lower(): f for f in entity.get("Fields") or [] if isinstance(f, dict)
            }
    header = by_entity.get("FBillHead", {})
    out: dict[str, Any] = {shape.pk: field_info("int", label="内码", createable=False, updateable=False)}
    refs = {f.key for f in shape.header if f.ref_key}
    for f in shape.header:
        meta = header.get(f.key.lower())
        out[f.key] = _info(shape, meta, f.key in refs) if meta else field_info("missing", label="not in metadata")
    for key, meta in header.items():
        if key.startswith("f_") and meta.get("Key") not in out:
            out[str(meta["Key"])] = _info(shape, meta, bool(meta.get("LookUpObject")))
    for sub in shape.subheads:
        metas = by_entity.get(sub.key, {})
        out[sub.key] = field_info("subhead", items={
            f.key: _info(shape, metas[f.key.lower()], f.ref_key is not None) if f.key.lower() in metas
            else field_info("missing") for f in sub.fields})
    if shape.entry is not None:
        metas = by_entity.get(shape.entry.key, {})
        items = {shape.entry.pk: field_info("int", label="分录内码", createable=True, updateable=False)}
        for f in shape.entry.fields:
            meta = metas.get(f.key.lower())
            items[f.key] = _info(shape, meta, f.ref_key is not None) if meta else field_info("missing")
        out[shape.entry.key] = field_info("entry", items=items)
    return out
