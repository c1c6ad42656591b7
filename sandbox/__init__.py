"""Faithful stand-ins of the external systems we cannot run, as ASGI apps.

`SANDBOXES` maps a system name to a factory returning a `sandbox.common.SandboxApp`. Each sandbox
lives in `sandbox/<name>/` and exposes `create_sandbox(**options)`; the factories import lazily so
listing the sandboxes does not import every one of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from erphub.sandbox.common import SandboxApp

_MODULES = {
    "jiandaoyun": "erphub.sandbox.jiandaoyun",
    "kingdee": "erphub.sandbox.kingdee",
    "yonyou": "erphub.sandbox.yonyou",
    "salesforce": "erphub.sandbox.salesforce",
}


def _factory(module_name: str) -> Callable[..., SandboxApp]:
    def create(**options: Any) -> SandboxApp:
        module = importlib.import_module(module_name)
        sandbox: SandboxApp = module.create_sandbox(**options)
        return sandbox

    create.__name__ = f"create_{module_name.rsplit('.', 1)[-1]}_sandbox"
    return create


SANDBOXES: dict[str, Callable[..., SandboxApp]] = {name: _factory(mod) for name, mod in _MODULES.items()}


def available() -> list[str]:
    """Sandbox names whose package is present in this checkout."""
    return sorted(name for name, mod in _MODULES.items() if importlib.util.find_spec(mod) is not None)


def create(name: str, **options: Any) -> SandboxApp:
    try:
        factory = SANDBOXES[name]
    except KeyError:
        raise KeyError(f"unknown sandbox {name!r}; valid sandboxes: {', '.join(sorted(SANDBOXES))}") from None
    return factory(**options)
