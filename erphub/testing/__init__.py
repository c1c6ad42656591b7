"""Test support for connectors, importable outside this repository (never imports erphub.sandbox).

`erphub.testing.contract` is the contract suite every connector passes; `ContractHarness` is what
it needs from a connector's harness.
"""

from erphub.testing.harness import (
    DISCOVERY,
    EXPIRE_AUTH,
    LINE_IDENTITY,
    LOG_SECRETS,
    LOST_RESPONSE,
    RATE_LIMIT,
    ContractHarness,
)

__all__ = ["DISCOVERY", "EXPIRE_AUTH", "LINE_IDENTITY", "LOG_SECRETS", "LOST_RESPONSE", "RATE_LIMIT",
           "ContractHarness"]
