"""One Prefect test harness for the whole flows/ suite (each start costs about 20 s here)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from erphub.flows.prefect_env import configure_prefect_env


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory, prefect_db_template: Path) -> Iterator[None]:
    configure_prefect_env(Path(tmp_path_factory.mktemp("prefect-state")))
    import prefect.testing.utilities as harness_module

    def migrated_temp_dir() -> str:
        # The harness keeps its database in a new temp folder (prefect/testing/utilities.py, Prefect 3.9):
        # the migrated template there spares its server the migrations (tests/prefect_template.py).
        folder = tempfile.mkdtemp()
        shutil.copyfile(prefect_db_template, Path(folder) / "prefect-test.db")
        return folder

    with mock.patch.object(harness_module, "mkdtemp", migrated_temp_dir), \
            harness_module.prefect_test_harness(server_startup_timeout=180):
        yield
