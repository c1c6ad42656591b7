"""Jiandaoyun forms as each customer defines them: entry id, key field, and field names or aliases.

A real form addresses its fields by widget id (`_widget_1614...`) unless someone set a field
alias on the form (vendor-gaps.md, Jiandaoyun; hc.jiandaoyun.com/open/14220 "fields are named by
widget ids"). So a configured entity names its `entry_id`, its `key_field`, and optional `aliases`
(the name a mapping uses -> the form's field name); `lines.sku` names the item `sku` of the
sub-form `lines`. With `labels: true` the labels people see (客户名称, 联系人.姓名) are aliases too,
read from the form's widget/list. Names without an alias pass through unchanged, so a mapping may also
use the widget ids themselves. `FieldNames` translates records both ways; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FormEntity(BaseModel):
    """One configured form: `settings.entities.<name>` of a jiandaoyun system."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str = Field(min_length=1)
    key_field: str = Field(min_length=1, description="the match key: an alias or the form's field name")
    aliases: dict[str, str] = Field(
        default_factory=dict, description="mapping name -> form field name (widget id); 'sub.item' for sub-forms"
    )
    # Mappings name fields by their labels (客户名称) instead: the label -> widget map is read from the
    # form's widget/list once per connector; explicit aliases win. Labels must be unique on the form.
    labels: bool = False

    @model_validator(mode="after")
    def _one_to_one(self) -> FormEntity:
        targets = list(self.aliases.values())
        doubled = sorted({t for t in targets if targets.count(t) > 1})
        if doubled:
            raise ValueError(f"aliases name the same form field twice: {', '.join(doubled)}")
        for alias, target in self.aliases.items():
            if ("." in alias) != ("." in target):
                raise ValueError(f"alias {alias!r} -> {target!r}: a sub-form item maps to a sub-form item")
        return self


def label_aliases(widgets: list[dict[str, Any]]) -> dict[str, str]:
    """widget/list answer -> {label: name, "sublabel.itemlabel": "sub.item"}; a repeated label is an error."""
    out: dict[str, str] = {}

    def add(label: Any, name: str) -> None:
        text = str(label or "").strip()
        if not text:
            return
        if text in out and out[text] != name:
            raise ValueError(f"the label {text!r} names two fields ({out[text]}, {name}): give them aliases")
        out[text] = name

    for widget in widgets:
        name = str(widget.get("name"))
        add(widget.get("label"), name)
        for item in widget.get("items") or []:
            if isinstance(item, dict):
                add(f"{widget.get('label')}.{item.get('label')}", f"{name}.{item.get('name')}")
    return out


class FieldNames:
    """Alias <-> form field name, for the header and for each sub-form's items."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self._out: dict[str | None, dict[str, str]] = {None: {}}  # sub-form alias (None: header) -> names
        for alias, target in aliases.items():
            if "." in alias:
                sub, item = alias.split(".", 1)
                self._out.setdefault(sub, {})[item] = target.split(".", 1)[1]
            else:
                self._out[None][alias] = target
        self._in = {sub: {v: k for k, v in names.items()} for sub, names in self._out.items()}

    def to_form(self, name: str) -> str:
        return self._out[None].get(name, name)

    def to_form_data(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Record data in mapping names -> the form's field names (sub-form rows too)."""
        out: dict[str, Any] = {}
        for name, value in data.items():
            items = self._out.get(name)
            if name in self._out and name is not None and isinstance(value, list) and items:
                value = [{items.get(k, k): v for k, v in row.items()} if isinstance(row, dict) else row
                         for row in value]
            out[self.to_form(name)] = value
        return out

    def from_form_data(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A record as the API returns it -> mapping names."""
        out: dict[str, Any] = {}
        for name, value in row.items():
            alias = self._in[None].get(name, name)
            items = self._in.get(alias) if alias in self._out else None
            if items and isinstance(value, list):
                value = [{items.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r for r in value]
            out[alias] = value
        return out

    def child_aliases(self) -> dict[str, frozenset[str]]:
        return {sub: frozenset(items) for sub, items in self._out.items() if sub is not None}
