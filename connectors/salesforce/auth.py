"""Salesforce OAuth2: client-credentials, username-password or refresh-token grant, then the instance.

Token answers carry `instance_url` and no lifetime; business calls go to the instance, so `apply`
re-targets a request built against the login host to the instance URL learnt at login (TokenAuth
has no hook for a base URL discovered at login). Without `expires_in` the token is renewed after
`session_ttl_s` (the org's session timeout) minus the leeway, and at once on 401 INVALID_SESSION_ID.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from erphub.connectors.auth import OAuth2ClientCredentials, OAuth2RefreshToken
from erphub.core.errors import ProtocolError

TOKEN_PATH = "/services/oauth2/token"


class _InstanceMixin:
    """Sends every request to the `instance_url` of the last token answer."""

    token_response: dict[str, Any]

    @property
    def instance_url(self) -> str | None:
        value = self.token_response.get("instance_url")
        return str(value).rstrip("/") if value else None

    def _retarget(self, request: httpx.Request) -> None:
        instance = self.instance_url
        if instance is None:
            raise ProtocolError("token response has no instance_url")
        target = httpx.URL(instance)
        if (request.url.scheme, request.url.host, request.url.port) == (target.scheme, target.host, target.port):
            return
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        request.headers["Host"] = target.netloc.decode("ascii")


class ClientCredentialsAuth(_InstanceMixin, OAuth2ClientCredentials):
    def apply(self, request: httpx.Request) -> None:
        super().apply(request)
        self._retarget(request)


class RefreshTokenAuth(_InstanceMixin, OAuth2RefreshToken):
    def apply(self, request: httpx.Request) -> None:
        super().apply(request)
        self._retarget(request)


class PasswordAuth(_InstanceMixin, OAuth2ClientCredentials):
    """Username-password flow: the password is sent with the user's security token appended."""

    grant_type = "password"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        username: str,
        password: SecretStr,
        security_token: SecretStr | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(token_url, client_id, client_secret, **kwargs)
        self.username = username
        self._password = password
        self._security_token = security_token

    def _password_value(self) -> str:
        token = self._security_token.get_secret_value() if self._security_token else ""
        return self._password.get_secret_value() + token

    def grant(self) -> dict[str, str]:
        data = super().grant()
        data.update({"username": self.username, "password": self._password_value()})
        return data

    def apply(self, request: httpx.Request) -> None:
        super().apply(request)
        self._retarget(request)

    def secret_values(self) -> list[str]:
        extra = [self._password.get_secret_value(), self._password_value()]
        if self._security_token:
            extra.append(self._security_token.get_secret_value())
        return [*super().secret_values(), *extra]
