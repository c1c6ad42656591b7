"""Prefect settings that must be in place before `import prefect` (measured in shared/reference/peers.md)."""

from __future__ import annotations

import os
from pathlib import Path

from erphub.core.files import private_dir
from erphub.monitoring.logging import PREFECT_LOGGING_CONFIG


def configure_prefect_env(state_dir: Path) -> None:
    """Project-local PREFECT_HOME and a startup timeout long enough for the embedded server here."""
    home = private_dir(state_dir / "prefect")  # Prefect's database holds flow parameters and results
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        # Prefect's loggers through erphub's handlers (JSON lines, redaction); see that file.
        "PREFECT_LOGGING_SETTINGS_PATH": PREFECT_LOGGING_CONFIG,
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
