"""Config files for engine tests that need the whole runtime (Hub, CLI) over memory systems."""

from __future__ import annotations

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
