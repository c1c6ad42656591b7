"""A system's URL is checked when the config is validated, not at the first request of a run."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator


def check_http_url(value: str) -> str:
    """`http://host[:port]/...` or `https://...`; `htp:/x`, `http:/x`, `example.com` are refused."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r} (e.g. https://api.example.com)")
    try:
        _ = parts.port  # a port that is not a number, or out of range, fails here
    except ValueError:
        raise ValueError(f"not an http(s) URL: {value!r} (bad port)") from None
    return value.strip()


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


def without_credentials(url: str) -> str:
    """The URL to show in output and errors: `https://user:pw@host/api` becomes `https://***@host/api`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
