"""Prefect settings that must be in place before `import prefect` (measured in shared/reference/peers.md)."""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from erphub.core.errors import ServiceError
from erphub.core.files import private_dir, private_file
from erphub.flows import prefect_db
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


# `erphub serve` writes its Prefect API URL here (in the hub's state folder) once its Prefect server
# answers, and removes it when it stops; a one-shot `erphub run --engine prefect` then runs its flow
# on that server instead of starting an embedded one (about 4.5 s of its start, see the note of issue 13).
SERVER_FILE = "prefect-api-url"
# A file left by a killed serve names a server that is gone (its Prefect child died with it): a loopback
# server that does not answer /health within this is taken for gone, and the run embeds its own.
SERVER_PROBE_S = 0.5


def record_server(state_dir: Path, api_url: str) -> Path:
    """Name serve's Prefect API for one-shot runs of the same hub (written whole or not at all)."""
    path = private_dir(state_dir) / SERVER_FILE
    temporary = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    temporary.write_text(api_url + "\n", encoding="utf-8")
    private_file(temporary)
    os.replace(temporary, path)
    return path


def forget_server(state_dir: Path, api_url: str) -> None:
    """Remove the file, if it still names this server (a later serve may have written its own)."""
    path = state_dir / SERVER_FILE
    try:
        if path.read_text(encoding="utf-8").strip() == api_url:
            path.unlink()
    except OSError:
        pass


def running_server(state_dir: Path, timeout_s: float = SERVER_PROBE_S) -> str | None:
    """The Prefect API URL serve recorded for this hub, if its server answers /health now; else None."""
    try:
        url = (state_dir / SERVER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not url.startswith(("http://", "https://")):
        return None
    import httpx

    try:
        answer = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return url if answer.status_code == 200 else None


def attach_to_serve(state_dir: Path) -> str | None:
    """Point PREFECT_API_URL at the Prefect server of this hub's `erphub serve`, when one runs and no
    PREFECT_API_URL is set already (that one always wins). Call before Prefect is imported; returns
    the URL attached to."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    url = running_server(state_dir)
    if url is not None:
        os.environ["PREFECT_API_URL"] = url
    return url


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
    behind. Here the same uvicorn command (Prefect 3.9's, prefect/server/api/server.py) is started by
    us, its child given PR_SET_PDEATHSIG, on a thread that lives as long as the process (the death
    signal follows the starting thread), and stopped at exit. Its URL goes into PREFECT_API_URL
    before this process imports Prefect, so Prefect uses it and starts nothing itself.

    What its start costs (measured, `erphub run --engine prefect`, see the note of issue 13): the
    child is spawned at once, before this process imports anything of Prefect (importing Prefect's
    server module here, only to use its `SubprocessASGIServer`, cost about 4 s of CPU and delayed
    the spawn by as much); a new database starts as a copy of a migrated one (flows/prefect_db.py)
    instead of running Prefect's migrations. The child's own imports remain, overlapping the
    parent's config, imports and probe.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._db: Path | None = None  # PREFECT_HOME's database, when Prefect uses that one
        self._template = Path()
        self._new_db = False  # created by this start: kept as the template once migrated

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @classmethod
    def start(cls) -> EmbeddedServer | None:
        """Start it in the background; None when PREFECT_API_URL names a server to use instead."""
        if os.environ.get("PREFECT_API_URL"):
            return None
        server = cls(free_port())
        os.environ["PREFECT_API_URL"] = server.api_url  # read by Prefect's settings when it is imported
        atexit.register(server.stop)
        threading.Thread(target=server._serve, name="prefect-embedded-server", daemon=True).start()
        return server

    def _serve(self) -> None:
        try:
            self._spawn()
            self._wait_healthy()
        except BaseException as exc:  # reported by wait(), in the main thread
            self.error = exc
        finally:
            self.ready.set()
        threading.Event().wait()  # the child's death signal is tied to this thread: keep it alive

    def _spawn(self) -> None:
        home = os.environ.get("PREFECT_HOME")
        custom_db = any(os.environ.get(f"PREFECT_{part}_DATABASE_CONNECTION_URL") for part in ("API", "SERVER"))
        db = Path(home) / prefect_db.DB_NAME if home and not custom_db else None
        template = prefect_db.template_path(version("prefect"))
        seeded = db is not None and not db.exists() and prefect_db.seed(db, template)
        self._new_db = db is not None and not db.exists()
        self._db, self._template = db, template
        at_head = seeded or (db is not None and prefect_db.same_schema(db, template))
        site = Path(importlib.util.find_spec("prefect").origin or "").parent.parent  # type: ignore[union-attr]
        # Prefect passes its settings as variables too; here they are all in this environment already
        # (configure_prefect_env, the user's), and the child reads PREFECT_HOME's profiles itself.
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL")  # that is the server itself
        if at_head:  # Alembic would load every migration script only to find nothing to do
            env.setdefault("PREFECT_API_DATABASE_MIGRATE_ON_START", "false")
        if seeded:  # the template holds this Prefect's block types already
            env.setdefault("PREFECT_API_BLOCKS_REGISTER_ON_START", "false")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(site), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, preexec_fn=death_signal_hook())
        self.pid = self._process.pid

    def _wait_healthy(self) -> None:
        import httpx

        assert self._process is not None
        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 180)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise ServiceError(f"the embedded Prefect server exited with {code} before it answered"
                                       f"{' (port ' + str(self.port) + ' taken)' if code == 3 else ''}")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServiceError(f"the embedded Prefect server did not answer within {timeout:.0f} s")
                time.sleep(0.1)
        if self._new_db and self._db is not None:  # migrated by this start, no run in it yet: the template
            prefect_db.keep_as_template(self._db, self._template)

    def wait(self) -> None:
        """Block until the server answers; re-raise what stopped it from starting."""
        self.ready.wait()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """At exit (atexit), after Prefect's own exit handlers: they may still send it events."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
