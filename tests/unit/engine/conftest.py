"""Fixtures of the engine tests: a pair of in-memory systems private to each test."""

from __future__ import annotations

import pytest

from erphub.connectors.memory import MemorySystem, memory_system


@pytest.fixture
def systems(request: pytest.FixtureRequest) -> tuple[MemorySystem, MemorySystem]:
    tag = request.node.name
    return memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")

