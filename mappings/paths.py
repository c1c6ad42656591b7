"""Source paths: `customer.contact.phone`, `items[0].sku`, `lines[*].amount`, `$.currency`.

A path is parsed once at compile time into a getter `get(scope, root) -> value`. `scope` is the
record (or, inside a child collection, the current line); a path starting with `$.` reads from
the whole record instead. A missing key, an index past the end or a step into something that is
not an object/list yields None: absence is a value the mapping decides about (default, required),
never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from erphub.core.errors import PathSyntaxError

Getter = Callable[[Any, Any], Any]

ROOT = "$"
_TOKEN = re.compile(
    r"""
    (?P<name>[^.\[\]"\s]+)            # a plain key: anything but . [ ] " and spaces (Chinese is fine)
    | \[(?P<index>-?\d+)\]            # [0], [-1]
    | \[(?P<star>\*)\]                # [*]: every item, the result is a list
    | \["(?P<quoted>[^"]*)"\]         # ["key with.dots"]
    | (?P<dot>\.)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Path:
    text: str
    from_root: bool
    steps: tuple[str | int | None, ...]  # str = key, int = index, None = every item

    @property
    def head(self) -> str | None:
        """The first key: the source field the connector's schema must declare."""
        first = self.steps[0] if self.steps else None
        return first if isinstance(first, str) else None

    @property
    def fans_out(self) -> bool:
        return None in self.steps


def parse_path(text: str) -> Path:
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("a source path must be a non-empty string")
    raw = text.strip()
    from_root = False
    if raw == ROOT:
        return Path(text, True, ())
    if raw.startswith("$."):
        from_root, raw = True, raw[2:]
    steps: list[str | int | None] = []
    pos = 0
    expect_name = True  # a key is allowed here (start of path or after a dot)
    while pos < len(raw):
        m = _TOKEN.match(raw, pos)
        if m is None:
            raise PathSyntaxError(f"unexpected {raw[pos]!r} at position {pos + 1} in path {text!r}")
        if m.group("dot") is not None:
            if expect_name:
                raise PathSyntaxError(f"empty segment at position {pos + 1} in path {text!r}")
            expect_name = True
        elif m.group("name") is not None:
            if not expect_name:
                raise PathSyntaxError(f"missing '.' before {m.group('name')!r} in path {text!r}")
            steps.append(m.group("name"))
            expect_name = False
        elif m.group("quoted") is not None:
            steps.append(m.group("quoted"))
            expect_name = False
        elif m.group("star") is not None:
            if not steps:
                raise PathSyntaxError(f"[*] needs a list field before it in path {text!r}")
            steps.append(None)
            expect_name = False
        else:
            if not steps:
                raise PathSyntaxError(f"an index needs a list field before it in path {text!r}")
            steps.append(int(m.group("index")))
            expect_name = False
        pos = m.end()
    if expect_name:
        raise PathSyntaxError(f"path {text!r} ends with '.'")
    return Path(text, from_root, tuple(steps))


def _walk(value: Any, steps: tuple[str | int | None, ...]) -> Any:
    for i, step in enumerate(steps):
        if value is None:
            return None
        if isinstance(step, str):
            value = value.get(step) if isinstance(value, dict) else None
        elif step is None:
            if not isinstance(value, list):
                return None
            rest = steps[i + 1 :]
            return [_walk(item, rest) for item in value]
        elif isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def compile_getter(path: Path) -> Getter:
    """A getter specialised for the common shapes, so a plain field costs one dict lookup."""
    steps = path.steps
    if path.from_root:
        if not steps:
            return lambda scope, root: root
        inner = compile_getter(Path(path.text, False, steps))
        return lambda scope, root: inner(root, root)
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]
        return lambda scope, root: scope.get(key)
    if len(steps) == 2 and isinstance(steps[0], str) and isinstance(steps[1], str):
        k1, k2 = steps

        def get2(scope: Any, root: Any) -> Any:
            v = scope.get(k1)
            return v.get(k2) if isinstance(v, dict) else None

        return get2
    return lambda scope, root: _walk(scope, steps)


def dotted_target(parts: tuple[str, ...]) -> str:
    return ".".join(parts)
