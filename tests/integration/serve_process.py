"""`erphub serve` as a real subprocess on a free loopback port, for the tests that need one."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_serve(config: Path, port: int, *, cwd: Path, env: Mapping[str, str],
                  args: tuple[str, ...] = ("--no-schedules",)) -> Iterator[subprocess.Popen[str]]:
    """Start `erphub serve --config CONFIG --port PORT ARGS`, wait for /healthz, kill it at the end.

    Its output (stdout and stderr) is on the process's `stdout` pipe; on a failed start it is in the
    test's failure message."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "erphub.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port), *args],
        cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate()[0]
            pytest.fail(f"erphub serve did not come up (exit {proc.returncode}):\n{out[-3000:]}")
        time.sleep(0.1)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
