"""Connectors: one module or folder per system, plus the shared HTTP plumbing written once.

A connector module is found by its name (`registry`); a connector kept outside erphub declares an
entry point in the group `erphub.connectors`. Either way `connector_class(kind)` returns it.
"""

from erphub.connectors.base import Connector, ConnectorBase, ConnectorSettings, SystemContext
from erphub.connectors.registry import connector_class, known_kinds

__all__ = ["Connector", "ConnectorBase", "ConnectorSettings", "SystemContext", "connector_class", "known_kinds"]
