"""A Prefect server behind basic auth carries its password in PREFECT_API_URL: `erphub deploy` and
`erphub worker` never print it, in an error or in `--json`."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from erphub.cli.main import app
from erphub.core.urls import without_credentials


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["deploy"], ["worker"]])
def test_an_unreachable_server_is_named_without_its_password(command: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", f"http://ops:s3cret-pw@127.0.0.1:{_closed_port()}/api")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert "unreachable" in result.output and "http://***@127.0.0.1:" in result.output
    assert "s3cret-pw" not in result.output and "ops:" not in result.output


def test_without_credentials_keeps_everything_but_the_userinfo() -> None:
    assert without_credentials("https://u:p@prefect.example.com:4200/api?x=1") == "https://***@prefect.example.com:4200/api?x=1"
    assert without_credentials("http://127.0.0.1:4200/api") == "http://127.0.0.1:4200/api"
    assert without_credentials("https://token@host/api") == "https://***@host/api"
