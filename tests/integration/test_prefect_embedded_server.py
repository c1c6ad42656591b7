"""A killed `erphub run --engine prefect` takes its embedded Prefect server with it (SIGKILL included).

Prefect stops its ephemeral server from `atexit`, which a SIGKILLed process never runs; before
`EmbeddedServer` the uvicorn child was left running, reparented to init, holding its port and
Prefect's database. The child here does what `erphub run --engine prefect` does before its first
flow (erphub.cli.runner), then waits to be killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from erphub.store.leases import process_stat
from tests.prefect_template import seed_prefect_home

pytestmark = pytest.mark.prefect

_CHILD = """
import sys
from pathlib import Path
from erphub.flows.prefect_env import EmbeddedServer, configure_prefect_env
configure_prefect_env(Path(sys.argv[1]))
server = EmbeddedServer.start()
server.wait()
print(server.pid, flush=True)
sys.stdin.read()  # until killed
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def test_sigkill_of_the_run_leaves_no_prefect_process(tmp_path: Path, prefect_db_template: Path) -> None:
    seed_prefect_home(tmp_path / "prefect", prefect_db_template)  # configure_prefect_env's home, migrated
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        server_pid = int(child.stdout.readline())
        assert _children(child.pid) == [server_pid] and _alive(server_pid)  # the server is its child
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 60  # uvicorn shuts down on the death signal's SIGTERM
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server_pid), "the embedded Prefect server outlived its killed parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
