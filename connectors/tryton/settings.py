"""Settings of the `tryton` connector."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from erphub.connectors.base import ConnectorSettings
from erphub.core.urls import HttpUrl


class TrytonSettings(ConnectorSettings):
    """`url` is the server's base URL (http://host:8000); calls go to `<url>/<database>/rpc/`."""

    url: HttpUrl
    database: str
    login: str
    password: SecretStr
    language: str = "en"
    # How far a sales order written by the hub goes: left as draft, quoted, or confirmed
    # (confirming creates its shipment and, with invoice method "order", its draft invoice).
    sale_workflow: Literal["draft", "quote", "confirm"] = "draft"
    sale_invoice_method: Literal["order", "shipment", "manual"] = "order"
    sale_shipment_method: Literal["order", "invoice", "manual"] = "order"
    default_payment_term: str | None = None  # payment term name used when a sale names none
    default_currency: str | None = None  # ISO code used when a sale names none (else company's)
    # Identifier type of a customer's tax_identifier. Tryton checks the code against it with
    # python-stdnum: "cn_vat" (Tryton 8's name for stdnum's cn_uscc) refuses a 统一社会信用代码
    # whose check character is wrong. None accepts any code.
    tax_identifier_type: str | None = "cn_vat"
