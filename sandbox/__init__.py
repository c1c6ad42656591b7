"""Faithful stand-ins of the external systems we cannot run, as ASGI apps.

Each sandbox is a subpackage `sandbox/<name>/` exposing `create_sandbox(**options)` that returns a
`erphub.sandbox.common.SandboxApp`; the subpackages are found by scanning this package, so adding a sandbox
means adding its folder. Listing them does not import them (the CLI's help text lists them on every
start); `create` imports only the one asked for.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from erphub.sandbox.common import SandboxApp


def available() -> list[str]:
    """Sandbox names: the subpackages of this package (plain modules are shared plumbing)."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if info.ispkg and not info.name.startswith("_"))


def create(name: str, **options: Any) -> SandboxApp:
    """A fresh app of sandbox `name`, built by its `create_sandbox(**options)`."""
    if name not in available():
        raise KeyError(f"unknown sandbox {name!r}; valid sandboxes: {', '.join(available())}")
    factory = getattr(importlib.import_module(f"{__name__}.{name}"), "create_sandbox", None)
    if factory is None:
        raise KeyError(f"sandbox package {__name__}.{name} defines no create_sandbox(**options)")
    sandbox: SandboxApp = factory(**options)
    return sandbox
