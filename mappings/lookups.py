"""Code tables: CSV files under `mappings/lookups/`, read once when a mapping compiles.

A table is a CSV with a header row; any column can be the key and any other the value. A key
column with the same code twice is refused when the table is used as a key: a lookup that could
answer two ways is a guess.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from erphub.core.errors import LookupTableError
from erphub.core.files import lookups_beside

__all__ = ["DEFAULT_LOOKUPS_DIR", "LookupTable", "LookupTables", "lookups_beside"]

DEFAULT_LOOKUPS_DIR = Path(__file__).resolve().parent / "lookups"


@dataclass
class LookupTable:
    name: str
    file: str
    columns: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]  # (CSV line number, row)
    _indexes: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)

    def index(self, key: str, value: str) -> dict[str, str | None]:
        """`{key code: value}`; built once per (key, value) pair and shared by every mapping.

        An empty value cell is None: the code is known but has no answer, so the lookup's
        `on_missing` decides (an empty text would slip into the target as if it were a code)."""
        for column in (key, value):
            if column not in self.columns:
                raise LookupTableError(
                    f"lookup table {self.name!r} has no column {column!r}; columns: {', '.join(self.columns)}"
                )
        cached = self._indexes.get((key, value))
        if cached is not None:
            return cached
        out: dict[str, str | None] = {}
        first_line: dict[str, int] = {}
        for line, row in self.rows:
            code = row.get(key, "")
            if code == "":
                continue
            if code in out:
                raise LookupTableError(
                    f"lookup table {self.name!r} has code {code!r} twice in column {key!r} "
                    f"(lines {first_line[code]} and {line}); a lookup must have one answer",
                    file=self.file, line=line,
                )
            out[code] = row.get(value) or None
            first_line[code] = line
        self._indexes[(key, value)] = out
        return out


class LookupTables:
    """The tables of one directory, each read on first use and then kept."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else DEFAULT_LOOKUPS_DIR
        self._tables: dict[str, LookupTable] = {}

    def available(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.csv"))

    def get(self, name: str) -> LookupTable:
        table = self._tables.get(name)
        if table is not None:
            return table
        path = self.directory / f"{name}.csv"
        if "/" in name or "\\" in name or not path.is_file():
            known = ", ".join(self.available()) or "(none)"
            raise LookupTableError(f"unknown lookup table {name!r} in {self.directory}; tables: {known}")
        table = _read_csv(name, path)
        self._tables[name] = table
        return table


def _read_csv(name: str, path: Path) -> LookupTable:
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM; tolerate it
    except (OSError, UnicodeDecodeError) as exc:
        raise LookupTableError(f"cannot read lookup table {name!r}: {exc}", file=str(path)) from None
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise LookupTableError(f"lookup table {name!r} is empty (it needs a header row)",
                               file=str(path), line=1) from None
    columns = tuple(h.strip() for h in header)
    if any(not c for c in columns) or len(set(columns)) != len(columns):
        raise LookupTableError(
            f"lookup table {name!r} header must name every column once: {header}", file=str(path), line=1
        )
    rows: list[tuple[int, dict[str, str]]] = []
    for line_no, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            raise LookupTableError(
                f"lookup table {name!r} line {line_no} has {len(cells)} cells, the header has {len(columns)} "
                f"({path}:{line_no})",
                file=str(path), line=line_no,
            )
        rows.append((line_no, {c: v.strip() for c, v in zip(columns, cells, strict=True)}))
    return LookupTable(name, str(path), columns, rows)
