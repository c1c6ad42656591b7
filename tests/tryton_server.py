"""Start and stop a real Tryton server from the template database (no pytest needed).

    from tests.tryton_server import tryton_server
    with tryton_server() as srv:          # copies the template, starts trytond on a free port
        srv.url, srv.database, srv.login, srv.password, srv.meta["products"]["1.01.001"]

`ensure_template()` installs `.venv-tryton` and builds the template when missing (about 11 s +
27 s the first time, nothing after). Each server gets its own copy of the template in a temp dir,
so tests may write freely. The server is stopped by its PID, never by name.

Environment: `TRYTON_VENV` (default `<repo>/.venv-tryton`), `TRYTON_TEMPLATE` (default
`<repo>/.erphub/tryton-template`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def venv_dir() -> Path:
    return Path(os.environ.get("TRYTON_VENV", ROOT / ".venv-tryton"))


def template_dir() -> Path:
    return Path(os.environ.get("TRYTON_TEMPLATE", ROOT / ".erphub" / "tryton-template"))


def ensure_template() -> Path:
    """Install Tryton and build the template if needed (both steps skip themselves when done).

    A file lock keeps parallel test processes from building it twice at the same time.
    """
    venv = venv_dir()
    out = template_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".tryton-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["bash", str(ROOT / "scripts" / "tryton" / "install.sh"), str(venv)], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        subprocess.run([str(venv / "bin" / "python"), str(ROOT / "scripts" / "tryton" / "build_template.py"),
                        "--out", str(out)], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return out


def tryton_available() -> bool:
    """True when the venv and the template exist (tests may then skip the install step)."""
    return (venv_dir() / "bin" / "trytond").exists() and (template_dir() / "template.json").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TrytonServer:
    url: str                 # base URL, e.g. http://127.0.0.1:38123
    database: str
    login: str
    password: str
    pid: int
    workdir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    started_in_s: float = 0.0

    @property
    def db_file(self) -> Path:
        return self.workdir / f"{self.database}.sqlite"

    def log_text(self) -> str:
        log = self.workdir / "trytond.log"
        return log.read_text(errors="replace") if log.exists() else ""


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    body = {"id": 0, "method": "common.server.version", "params": []}
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"trytond exited with code {proc.returncode} before answering")
            try:
                reply = client.post(f"{url}/rpc/", json=body)
                if reply.status_code == 200 and "result" in reply.json():
                    return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.1)
    raise RuntimeError(f"trytond did not answer common.server.version within {START_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def load_cn_subdivisions(db_file: Path) -> None:
    """China's provinces as `country.subdivision` rows, as trytond's `import_countries` loads them on a
    real server (the template is built without that download): ISO 3166-2 codes, Chinese names."""
    rows = [line.split(",") for line in (ROOT / "mappings" / "lookups" / "cn_provinces.csv").read_text(
        encoding="utf-8").splitlines()[1:] if line.strip()]
    with sqlite3.connect(db_file) as con:
        found = con.execute("SELECT id FROM country_country WHERE code = 'CN'").fetchone()
        if found is None or con.execute("SELECT count(*) FROM country_subdivision").fetchone()[0]:
            return
        con.executemany(
            "INSERT INTO country_subdivision (active, code, country, name, type, create_date, create_uid) "
            "VALUES (1, ?, ?, ?, 'province', CURRENT_TIMESTAMP, 0)",
            [(code, found[0], name) for _, code, name in rows],
        )


@contextmanager
def tryton_server(*, template: Path | None = None, build: bool = True,
                  env: dict[str, str] | None = None) -> Iterator[TrytonServer]:
    """A running trytond on 127.0.0.1:<free port> over a private copy of the template DB.

    `env` adds TRYTOND_<SECTION>__<OPTION> settings (e.g. a short session timeout).
    """
    src = template or (ensure_template() if build else template_dir())
    meta = json.loads((src / "template.json").read_text())
    database = str(meta["database"])
    workdir = Path(tempfile.mkdtemp(prefix="erphub-tryton."))
    proc: subprocess.Popen[bytes] | None = None
    try:
        shutil.copy2(src / f"{database}.sqlite", workdir / f"{database}.sqlite")
        load_cn_subdivisions(workdir / f"{database}.sqlite")
        port = free_port()
        server_env = dict(os.environ)
        server_env.update(
            TRYTOND_DATABASE__URI="sqlite://",
            TRYTOND_DATABASE__PATH=str(workdir),
            TRYTOND_WEB__LISTEN=f"127.0.0.1:{port}",
        )
        server_env.update(env or {})
        started = time.monotonic()
        with open(workdir / "trytond.log", "wb") as log:
            # `-d` matters: without it 8.2.1 answers logins to a not-yet-loaded DB with KeyError.
            proc = subprocess.Popen(
                [str(venv_dir() / "bin" / "trytond"), "-d", database],
                env=server_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, proc, started + START_TIMEOUT_S)
        yield TrytonServer(url=url, database=database, login=str(meta["login"]),
                           password=str(meta["password"]), pid=proc.pid, workdir=workdir, meta=meta,
                           started_in_s=time.monotonic() - started)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":  # manual check: start, print timings, stop
    with tryton_server() as srv:
        print(f"tryton up at {srv.url} (db {srv.database}) in {srv.started_in_s:.2f} s, pid {srv.pid}")
