"""Settings of the `sql` connector: one database URL, one staging table per entity."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erphub.connectors.base import ConnectorSettings
from erphub.core.records import Direction


class SqlEntitySettings(BaseModel):
    """How one entity lives in one table.

    Handshake staging tables (中间表) carry a status column: the producer inserts rows with
    `status_new`, the consumer marks them `status_done` or `status_error` after it has handled
    them. When `status_column` is set, reads return only `status_new` rows and `acknowledge()`
    marks them; writes set it to `status_new` so the ERP side picks the row up.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    table: str
    db_schema: str | None = Field(default=None, alias="schema")
    key_column: str
    id_column: str = "id"
    cursor_column: str = "updated_at"
    status_column: str | None = None
    status_new: str = "new"
    status_done: str = "done"
    status_error: str = "error"
    error_column: str | None = None      # where acknowledge() writes the reason of a failure
    json_columns: tuple[str, ...] = ()   # text columns holding JSON (child lines); JSON-typed ones are found
    directions: frozenset[Direction] = frozenset({Direction.READ, Direction.WRITE})
    native_name: str | None = None

    @model_validator(mode="after")
    def _error_needs_status(self) -> SqlEntitySettings:
        if self.error_column and not self.status_column:
            raise ValueError("error_column needs status_column (errors are part of the handshake)")
        return self


class SqlSettings(ConnectorSettings):
    """`url` is an SQLAlchemy URL without the password (e.g. postgresql+psycopg://hub@db/erp);
    the password comes separately as a secret so it never sits in a config file."""

    url: str
    password: SecretStr | None = None
    entities: dict[str, SqlEntitySettings]
    pool_size: int = 5
    connect_args: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, value: str) -> str:
        from sqlalchemy.engine import make_url

        try:
            parsed = make_url(value)
        except Exception as exc:  # sqlalchemy raises ArgumentError with the URL in it: keep it out
            raise ValueError("not a valid SQLAlchemy URL") from exc
        if parsed.password:
            raise ValueError("put the password in `password` (a secret), not in the URL")
        return value
