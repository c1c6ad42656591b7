"""Schema discovery: a connector reads the system's own metadata and says which fields each entity has.

`erphub systems discover SYSTEM` calls `discover` and writes the answer as a snapshot file next to
the config (`schema/<system>.json`), which the user reviews and commits; the mapping compiler then
checks mappings against it (erphub.mappings.schema_check). Each connector reads what its system
publishes: Jiandaoyun `widget/list`, Salesforce `describe`, Kingdee `QueryBusinessInfo`, Tryton
`fields_get`, SQL reflection; Yonyou publishes no metadata API, so its documented field lists are
reported (with `"source": "documented"`).

The answer per entity (plain JSON, the snapshot's own format):

    {"native_name": "BD_Customer", "key_field": "FNumber", "source": "QueryBusinessInfo",
     "fields": {"FName": {"type": "text", "label": "名称", "createable": true, "updateable": true,
                          "custom": false, "required": true, "reference": null,
                          "items": {...the same, for an entry / sub-form / child list...}}}}

Only fields the connector can move are listed (its record shape, plus the custom fields the
system declares), so the compiler's "unknown field" is never a field the connector would drop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

EntitySchema = dict[str, Any]

__all__ = ["EntitySchema", "SupportsDiscovery", "field_info"]


@runtime_checkable
class SupportsDiscovery(Protocol):
    """Optional capability: the entities' fields as the system itself describes them."""

    def discover(self, entities: Sequence[str]) -> dict[str, EntitySchema]: ...


def field_info(
    kind: str,
    *,
    label: str | None = None,
    createable: bool = True,
    updateable: bool = True,
    custom: bool = False,
    required: bool = False,
    reference: str | None = None,
    items: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One field of a snapshot (see the module docstring for the keys)."""
    info: dict[str, Any] = {"type": kind, "label": label, "createable": createable, "updateable": updateable,
                            "custom": custom, "required": required, "reference": reference}
    if items is not None:
        info["items"] = dict(items)
    return info
