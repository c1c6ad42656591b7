"""Settings of a Kingdee K/3 Cloud system (validated by the connector, not by config/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from erphub.connectors.base import ConnectorSettings
from erphub.core.urls import HttpUrl


class KingdeeSettings(ConnectorSettings):
    server_url: HttpUrl = Field(description="WebAPI root, e.g. http://erp.example.com/k3cloud/")
    acct_id: str = Field(description="account set (数据中心) id")
    username: str
    # Unset: LoginBySign when app_id/app_secret are given (Kingdee's recommended login; ValidateUser and
    # LoginByAppSecret are marked "not recommended", vip.kingdee.com/knowledge/650369502764414208),
    # ValidateUser only when nothing but a password is configured.
    auth_mode: Literal["password", "app_secret", "sign"] | None = None
    password: SecretStr | None = None
    app_id: str | None = None
    app_secret: SecretStr | None = None
    lcid: int = 2052
    org_number: str = Field(
        "100", description="organisation filled into create/use/sale org fields on create"
    )
    use_org_number: str | None = Field(
        None,
        description="multi-organisation tenants: the use-organisation (FUseOrgId.FNumber) whose copy of an "
        "allocated customer/material is read and looked up; unset reads every copy",
    )
    # Submit then Audit what is written: True for every entity, or a list of entity names.
    auto_submit_audit: bool | list[str] = False
    batch_size: int = Field(default=100, ge=1, le=1000, description="records per BatchSave call [assumed cap]")
    receivable_days: int = Field(
        default=30, ge=0, description="days after the order date a receivable falls due (customer_account view)"
    )
    session_max_age_s: float | None = Field(default=None, description="log in again proactively after this long")
    custom_fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="entity -> the account set's own header fields (F_ keys, see `erphub systems discover`) "
        "read and written with the standard ones",
    )

    @field_validator("custom_fields")
    @classmethod
    def _custom_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for entity, keys in value.items():
            bad = [k for k in keys if not k.startswith("F_")]
            if bad:
                raise ValueError(f"custom_fields.{entity}: {bad[0]!r} is not a custom field key (they start with F_)")
        return value

    @field_validator("server_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("server_url must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _credentials(self) -> KingdeeSettings:
        if self.auth_mode is None:
            self.auth_mode = "sign" if self.app_id and self.app_secret is not None else "password"
        if self.auth_mode == "password" and self.password is None:
            raise ValueError("auth_mode 'password' needs password")
        if self.auth_mode in ("app_secret", "sign") and (not self.app_id or self.app_secret is None):
            raise ValueError(f"auth_mode {self.auth_mode!r} needs app_id and app_secret")
        return self

    def audits(self, entity: str) -> bool:
        if isinstance(self.auto_submit_audit, bool):
            return self.auto_submit_audit
        return entity in self.auto_submit_audit
