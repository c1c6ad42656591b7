"""Connector registry: kind name -> connector class, with an error that lists valid names."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from erphub.core.errors import ConfigError

_REGISTRY: dict[str, type[Any]] = {}

# Built-in connectors are imported lazily so `erphub validate` does not pay for all of them.
_BUILTIN_MODULES = {
    "memory": "erphub.connectors.memory",
    "jiandaoyun": "erphub.connectors.jiandaoyun",
    "kingdee": "erphub.connectors.kingdee",
    "yonyou": "erphub.connectors.yonyou",
    "salesforce": "erphub.connectors.salesforce",
    "tryton": "erphub.connectors.tryton",
    "sql": "erphub.connectors.sql",
}

C = TypeVar("C", bound=type[Any])


def register(kind: str) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        _REGISTRY[kind] = cls
        cls.kind = kind
        return cls

    return decorate


def known_kinds() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def connector_class(kind: str) -> type[Any]:
    if kind not in _REGISTRY and kind in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[kind])
        except ModuleNotFoundError as exc:
            raise ConfigError(f"connector {kind!r} is not installed ({exc.name} missing)") from None
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ConfigError(
            f"unknown connector {kind!r}; valid connectors: {', '.join(known_kinds())}"
        ) from None
