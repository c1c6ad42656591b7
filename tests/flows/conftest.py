"""One Prefect test harness for the whole flows/ suite (each start costs about 20 s here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from erphub.flows.prefect_env import configure_prefect_env


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    configure_prefect_env(Path(tmp_path_factory.mktemp("prefect-state")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
