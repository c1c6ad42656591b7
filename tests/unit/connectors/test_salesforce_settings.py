"""Salesforce login settings: the client-credentials grant is refused on the shared login hosts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from erphub.connectors.salesforce.connector import SalesforceSettings


@pytest.mark.parametrize("url", [None, "https://login.salesforce.com", "https://Test.Salesforce.com/"])
def test_client_credentials_on_a_shared_login_host_asks_for_my_domain(url: str | None) -> None:
    values = {"client_id": "c", "client_secret": "s"} | ({} if url is None else {"login_url": url})
    with pytest.raises(ValidationError) as caught:
        SalesforceSettings.model_validate(values)
    [error] = caught.value.errors()
    assert error["loc"] == ("login_url",)
    assert "My Domain" in error["msg"] and "my.salesforce.com" in error["msg"]


def test_my_domain_and_the_other_grants_on_login_salesforce_com_are_accepted() -> None:
    mine = SalesforceSettings.model_validate({"client_id": "c", "client_secret": "s",
                                              "login_url": "https://acme.my.salesforce.com"})
    assert mine.login_url == "https://acme.my.salesforce.com"
    password = SalesforceSettings.model_validate({"client_id": "c", "client_secret": "s", "grant": "password",
                                                  "username": "u", "password": "p"})
    assert password.login_url == "https://login.salesforce.com"
