"""Mappings checked against a discovered schema snapshot (`erphub systems discover`), when there is one.

The snapshot (`schema/<system>.json` next to the config; format in erphub.connectors.discovery)
says which fields an entity has in the user's own system, with their types and whether they can
be written. `with_snapshot` turns a connector's built-in EntitySpec into a `SnapshotSpec` whose
field lists are the discovered ones, so the compiler's own checks ("unknown field ...; did you
mean ...") run against the real form; `check_target` adds what only the snapshot knows: a target
field the system does not let us write, and a constant of the wrong type. Without a snapshot
nothing changes: the connector's built-in defaults are checked as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from erphub.core.errors import ConfigError, MappingError
from erphub.core.records import EntitySpec

SNAPSHOT_DIR = "schema"
NUMERIC = frozenset({"number", "double", "int", "integer", "currency", "percent", "numeric", "float"})
TEXTUAL = frozenset({"text", "string", "textarea", "char", "email", "phone", "url", "picklist", "selection"})


@dataclass(frozen=True, slots=True)
class SnapshotSpec(EntitySpec):
    """An EntitySpec whose fields come from the system's metadata, with what each field allows."""

    schema: dict[str, Any] = field(default_factory=dict)  # field name -> info (snapshot format)
    snapshot_file: str = ""


class _Compiler(Protocol):
    target: EntitySpec | None

    def error(self, message: str, where: tuple[str | int, ...]) -> MappingError: ...


def snapshot_path(config_dir: Path, system: str) -> Path:
    return config_dir / SNAPSHOT_DIR / f"{system}.json"


def load_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot at `path`, or None when there is none; a broken file is a ConfigError naming it."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a schema snapshot: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entities"), dict):
        raise ConfigError(f"{path}: not a schema snapshot (no 'entities' object); run `erphub systems discover`")
    return data


def with_snapshot(spec: EntitySpec, config_dir: Path, system: str) -> EntitySpec:
    """`spec` with the discovered fields of the system's snapshot, or `spec` itself without one."""
    path = snapshot_path(config_dir, system)
    snapshot = load_snapshot(path)
    entity = (snapshot or {}).get("entities", {}).get(spec.name)
    if not isinstance(entity, dict) or not isinstance(entity.get("fields"), dict):
        return spec
    fields: dict[str, Any] = entity["fields"]
    children = {name: frozenset(info["items"]) for name, info in fields.items()
                if isinstance(info, dict) and isinstance(info.get("items"), dict)}
    return SnapshotSpec(
        name=spec.name, native_name=spec.native_name, directions=spec.directions,
        fields=frozenset(fields) | ({spec.key_field} if spec.key_field else set()),
        key_field=spec.key_field, child_fields=children, description=spec.description,
        state_changes_timestamped=spec.state_changes_timestamped,
        schema=fields, snapshot_file=str(path),
    )


def check_target(compiler: _Compiler, fs: Any, parts: list[str], where: tuple[str | int, ...],
                 child_target: str | None) -> None:
    """Refuse a target field the system will not let us write, or a constant of the wrong type."""
    spec = compiler.target
    if not isinstance(spec, SnapshotSpec):
        return
    info = spec.schema.get(child_target if child_target is not None else parts[0])
    if child_target is not None and isinstance(info, dict):
        info = (info.get("items") or {}).get(parts[0])
    if not isinstance(info, dict) or len(parts) > 1:  # `FGroup.FNumber`: the reference's code, not the field
        return
    name = ".".join(parts)
    if not info.get("createable", True) and not info.get("updateable", True):
        raise compiler.error(
            f"target field {name!r} of {spec.name!r} is read-only in the system ({spec.snapshot_file})", where)
    const = getattr(fs, "const", None)
    kind = str(info.get("type") or "").lower()
    if const is None or isinstance(const, bool):
        return
    if kind in NUMERIC and not isinstance(const, int | float | Decimal):
        raise compiler.error(f"target field {name!r} is a {kind} field; the constant {const!r} is not a number "
                             f"({spec.snapshot_file})", where)
    if kind in TEXTUAL and not isinstance(const, str | int | float):
        raise compiler.error(f"target field {name!r} is a {kind} field; the constant is a "
                             f"{type(const).__name__} ({spec.snapshot_file})", where)
