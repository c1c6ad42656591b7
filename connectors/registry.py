"""The one connector registry: kind name -> connector class, found rather than listed by hand.

Built-in connectors are the modules and subpackages of `erphub.connectors`: the module's name is the
kind, and the module is a connector when it defines a class whose `kind` is that name (the shared
plumbing modules define none, and are skipped without importing them). Connectors kept in other
distributions declare an entry point in the group `erphub.connectors`, named by the kind:

    [project.entry-points."erphub.connectors"]
    acme = "acme_erphub.connector:AcmeConnector"

Looking a kind up imports only its module (or loads only its entry point), so `erphub validate`
does not pay for every connector. A built-in wins over an entry point of the same name.

Webhook kinds are a connector capability: a `serve.webhooks` source of kind K is verified by the
`verify_webhook` of connector K (`base.SupportsWebhook`); the generic `hmac` kind is built in.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from types import ModuleType
from typing import Any

from erphub.connectors.base import SupportsWebhook
from erphub.connectors.webhooks import HMAC_KIND, WebhookVerifier, verify_hmac
from erphub.core.errors import ConfigError

ENTRY_POINT_GROUP = "erphub.connectors"
PACKAGE = "erphub.connectors"
# Shared plumbing, never a connector: skipped so listing the kinds does not import it for nothing.
# (A plumbing module missing here is still no connector: it defines no class of its own kind.)
_PLUMBING = frozenset({"auth", "base", "http", "ratelimit", "registry", "webhooks"})

_FOUND: dict[str, type[Any]] = {}  # kind -> class, once looked up

def builtin_modules() -> dict[str, str]:
    """Candidate kind -> module name, from the package's folder (no import of the candidates)."""
    package = importlib.import_module(PACKAGE)
    return {info.name: f"{PACKAGE}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_") and info.name not in _PLUMBING}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _defined_in(cls: type[Any], module: ModuleType) -> bool:
    return cls.__module__ == module.__name__ or cls.__module__.startswith(module.__name__ + ".")


def _connector_in(module: ModuleType, kind: str) -> type[Any] | None:
    """The class of `module` (or of its subpackage) whose `kind` is `kind`, if any."""
    for value in vars(module).values():
        if (isinstance(value, type) and getattr(value, "kind", None) == kind
                and hasattr(value, "settings_model") and _defined_in(value, module)):
            return value
    return None


def _import_builtin(kind: str, module_name: str) -> type[Any] | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise ConfigError(f"connector {kind!r} is not installed ({exc.name} missing)") from None
    return _connector_in(module, kind)


def _load_entry_point(kind: str, entry_point: importlib.metadata.EntryPoint) -> type[Any]:
    try:
        loaded = entry_point.load()
    except ImportError as exc:
        raise ConfigError(f"connector {kind!r} ({entry_point.value}) cannot be imported: {exc}") from None
    cls = _connector_in(loaded, kind) if isinstance(loaded, ModuleType) else loaded
    if not isinstance(cls, type) or getattr(cls, "kind", None) != kind:
        raise ConfigError(f"entry point {kind!r} of group {ENTRY_POINT_GROUP!r} ({entry_point.value}) "
                          f"is not a connector class whose kind is {kind!r}")
    return cls


def known_kinds() -> list[str]:
    """Every connector kind: built-ins (confirmed by importing them) and entry points."""
    kinds = set(_entry_points())
    for kind, module_name in builtin_modules().items():
        try:
            if _import_builtin(kind, module_name) is not None:
                kinds.add(kind)
        except ConfigError:
            kinds.add(kind)  # a connector whose optional package is missing is still a connector
    return sorted(kinds)


def connector_class(kind: str) -> type[Any]:
    """The connector class of `kind`; a ConfigError listing the valid kinds when there is none."""
    if kind in _FOUND:
        return _FOUND[kind]
    cls: type[Any] | None = None
    module_name = builtin_modules().get(kind)
    if module_name is not None:
        cls = _import_builtin(kind, module_name)
    elif (entry_point := _entry_points().get(kind)) is not None:
        cls = _load_entry_point(kind, entry_point)
    if cls is None:
        raise ConfigError(f"unknown connector {kind!r}; valid connectors: {', '.join(known_kinds())}")
    _FOUND[kind] = cls
    return cls


def _verifier_of(kind: str) -> WebhookVerifier | None:
    if kind == HMAC_KIND:
        return verify_hmac
    try:
        cls = connector_class(kind)
    except ConfigError:
        return None
    if isinstance(cls, SupportsWebhook):  # checks the class itself: the verifier is a static method
        verify: WebhookVerifier = cls.verify_webhook
        return verify
    return None


def webhook_kinds() -> list[str]:
    """The `serve.webhooks` kinds: `hmac` and every connector that verifies its own pushes."""
    return sorted(kind for kind in {HMAC_KIND, *known_kinds()} if _verifier_of(kind) is not None)


def webhook_verifier(kind: str) -> WebhookVerifier:
    """The signature check of webhook kind `kind`; a ConfigError listing the valid kinds when there is none."""
    verify = _verifier_of(kind)
    if verify is None:
        raise ConfigError(f"unknown webhook kind {kind!r}; valid kinds: {', '.join(webhook_kinds())}")
    return verify
