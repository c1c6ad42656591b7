"""YAML that remembers where every value came from.

`load_yaml` returns plain Python data (dicts, lists, scalars) and a `Locator` that answers
"which line and column is this path on?", so pydantic validation errors, mapping compile errors
and config errors can all name the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from erphub.core.errors import UserInputError
from erphub.core.limits import MAX_DEPTH, MAX_NODES, LimitExceeded, size_problem

PathKey = tuple[str | int, ...]
_BRACKET_RUN = re.compile(r"(?:[\[{]\s*){" + str(MAX_DEPTH + 1) + "}")


@dataclass
class Locator:
    """Maps a path of keys/indexes to a 1-based (line, column)."""

    file: str
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: Sequence[str | int]) -> tuple[int | None, int | None]:
        """Position of `path`, or of its nearest ancestor that has one."""
        key = tuple(path)
        while True:
            if key in self.positions:
                return self.positions[key]
            if not key:
                return (None, None)
            key = key[:-1]


class _Budget:
    """Counts the values `_walk` produces: aliases make a small text expand, and this stops it."""

    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, path: PathKey) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitExceeded(f"expands to more than {MAX_NODES} values (anchors and aliases?)")
        if len(path) > MAX_DEPTH:
            raise LimitExceeded(f"nested too deeply (more than {MAX_DEPTH} levels)")


def _walk(node: Any, path: PathKey, positions: dict[PathKey, tuple[int, int]],
          budget: _Budget | None = None) -> Any:
    budget = budget or _Budget()
    budget.spend(path)
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            try:
                line, col = node.lc.key(key)
                positions[child] = (line + 1, col + 1)
            except (KeyError, TypeError):
                pass
            out[str(key)] = _walk(value, child, positions, budget)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            try:
                line, col = node.lc.item(index)
                positions[child] = (line + 1, col + 1)
            except (KeyError, TypeError, IndexError):
                pass
            items.append(_walk(value, child, positions, budget))
        return items
    if node is None or isinstance(node, bool | int | float):
        return node
    if isinstance(node, str):
        return str(node)
    # ruamel's scalar subclasses (ScalarFloat, TimeStamp, ...) become their plain base values.
    for base in (bool, int, float, str):
        if isinstance(node, base):
            return base(node)
    return node


def parse_yaml(text: str, file: str, error_cls: type[UserInputError] = UserInputError) -> tuple[Any, Locator]:
    """Parse under the limits every input path shares (erphub.core.limits): size, nesting, alias expansion."""
    problem = size_problem(len(text.encode("utf-8", "surrogatepass")))
    if problem:
        raise error_cls(f"file too large: {problem}", file=file)
    if _BRACKET_RUN.search(text):  # the parser recurses per level: refuse `[[[[...` before it does
        raise error_cls(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", file=file)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        raw = yaml.load(text)
    except RecursionError:
        raise error_cls(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", file=file) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise error_cls(f"YAML syntax error: {problem}", file=file, line=line, column=column) from None
    except Exception as exc:  # ruamel raises a few non-marked errors (duplicate keys, bad unicode)
        raise error_cls(f"YAML error: {exc}", file=file) from None
    locator = Locator(file=file)
    if isinstance(raw, CommentedMap | CommentedSeq):
        locator.positions[()] = (1, 1)
    try:
        return _walk(raw, (), locator.positions), locator
    except LimitExceeded as exc:
        raise error_cls(f"YAML {exc}", file=file) from None
    except RecursionError:  # a self-referencing alias (`&a [*a]`) never ends
        raise error_cls("YAML refers to itself through an alias", file=file) from None


def load_yaml(path: str | Path, error_cls: type[UserInputError] = UserInputError) -> tuple[Any, Locator]:
    file = str(path)
    try:
        size = Path(path).stat().st_size
        problem = size_problem(size)  # before reading: a 50 MB file is refused without loading it
        if problem:
            raise error_cls(f"file too large: {problem}", file=file)
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_cls("file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error_cls(f"cannot read file: {exc}", file=file) from None
    return parse_yaml(text, file, error_cls)


def dotted(path: Sequence[str | int]) -> str:
    """`("pipelines", 0, "mapping")` -> `pipelines[0].mapping`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
