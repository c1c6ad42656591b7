"""Connectors: one module or folder per system, plus the shared HTTP plumbing written once."""

from erphub.connectors.base import Connector, ConnectorSettings, SystemContext
from erphub.connectors.registry import connector_class, known_kinds, register

__all__ = ["Connector", "ConnectorSettings", "SystemContext", "connector_class", "known_kinds", "register"]
