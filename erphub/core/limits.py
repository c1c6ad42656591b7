"""The limits every input path shares: config and mapping YAML, `mapping test` input, webhook bodies.

One place, so a config, a mapping, a sample file and a pushed event cannot be nested or sized
differently: what one path accepts, every path accepts. The numbers are far above anything a real
config, mapping or vendor push needs (the largest shipped mapping is ~6 KB and 6 levels deep) and
far below what takes a noticeable time or memory to refuse.
"""

from __future__ import annotations

from typing import Any

MAX_FILE_BYTES = 4 * 1024 * 1024  # a config, a mapping, a `mapping test` input file
MAX_BODY_BYTES = 5 * 1024 * 1024  # one webhook body (vendors push single records; 5 MB is generous)
MAX_DEPTH = 64  # nested mappings/lists, in YAML and in JSON alike
MAX_NODES = 200_000  # values after YAML alias expansion: an alias bomb is refused, not expanded


class LimitExceeded(ValueError):
    """An input is larger, deeper or expands further than the shared limits allow."""


def size_problem(size: int, limit: int = MAX_FILE_BYTES) -> str | None:
    if size > limit:
        return f"input is {size} bytes; the limit is {limit} bytes"
    return None


def check_depth(data: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise LimitExceeded when `data` (plain dicts and lists) nests deeper than `max_depth`.

    Iterative, so a document nested 100,000 deep is refused without touching the recursion limit.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            raise LimitExceeded(f"nested too deeply (more than {max_depth} levels)")
        stack.extend((child, depth + 1) for child in children)



def load_json(text: str | bytes, *, limit: int = MAX_FILE_BYTES) -> Any:
    """`json.loads` under the shared limits: size, then depth (a parser's RecursionError is a depth error).

    Raises LimitExceeded, or json.JSONDecodeError for text that is not JSON.
    """
    import json

    problem = size_problem(len(text), limit)
    if problem:
        raise LimitExceeded(problem)
    try:
        data = json.loads(text)
    except RecursionError:
        raise LimitExceeded(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    check_depth(data)
    return data
