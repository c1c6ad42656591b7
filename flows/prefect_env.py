"""Prefect settings that must be in place before `import prefect` (measured in shared/reference/peers.md)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def death_signal_hook() -> Callable[[], object] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the thread that started it ends
    (PR_SET_PDEATHSIG = 1, prctl(2)), which a SIGKILL of the whole process includes. libc is loaded
    here, in the parent, so the child makes only one system call between fork and exec."""
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    return lambda: prctl(1, signal.SIGTERM)


class EmbeddedServer:
    """Prefect's ephemeral server for `erphub run --engine prefect`, started early and tied to this process.

    Prefect starts its ephemeral server (`SubprocessASGIServer`: uvicorn in a child process) on the
    first API call and stops it from `atexit`, which a killed process never runs: the server was left
    behind. Here the same server class is started by us, its child given PR_SET_PDEATHSIG, on a
    thread that lives as long as the process (the death signal follows the starting thread). Prefect's
    `get_client` then finds this instance (the class keeps one per port) and starts nothing itself.
    Starting it before erphub loads its config and imports the flow lets the child's start-up (about
    two thirds of Prefect's fixed cost here) overlap the parent's.
    """

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.pid: int | None = None

    @classmethod
    def start(cls) -> EmbeddedServer | None:
        """Start it in the background; None when PREFECT_API_URL names a server to use instead."""
        if os.environ.get("PREFECT_API_URL"):
            return None
        server = cls()
        threading.Thread(target=server._serve, name="prefect-embedded-server", daemon=True).start()
        return server

    def _serve(self) -> None:
        import prefect
        from prefect.server.api.server import SubprocessASGIServer
        from prefect.settings import get_current_settings

        hook = death_signal_hook()

        class DiesWithParent(SubprocessASGIServer):
            def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
                # Prefect 3.9's own command (prefect/server/api/server.py), plus the pre-exec hook.
                return subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                     "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                     "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                    env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                         "PREFECT__SERVER_FINAL": "1",
                         **get_current_settings().to_environment_variables(exclude_unset=True)},
                    preexec_fn=hook)

        try:
            server = DiesWithParent()
            server.start()
            self.pid = server.server_process.pid if server.server_process else None
        except BaseException as exc:  # reported by wait(), in the main thread
            self.error = exc
        finally:
            self.ready.set()
        threading.Event().wait()  # the child's death signal is tied to this thread: keep it alive

    def wait(self) -> None:
        """Block until the server answers; re-raise what stopped it from starting."""
        self.ready.wait()
        if self.error is not None:
            raise self.error
