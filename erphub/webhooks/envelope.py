"""The pushed event's envelope: `{"op": "...", "data": {...}}` (Jiandaoyun's push; generic sources
use the same shape). Validated at the door so the inbox only holds events the worker can deliver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from erphub.core.errors import PayloadError
from erphub.core.limits import MAX_BODY_BYTES, LimitExceeded, load_json

__all__ = ["PayloadError", "PushEvent", "parse_event"]


class PushEvent(BaseModel):
    # Jiandaoyun adds fields over time; unknown envelope keys are tolerated, not stored.
    model_config = ConfigDict(extra="ignore")

    op: str = Field(min_length=1, max_length=64)
    data: dict[str, Any]

    @field_validator("op")
    @classmethod
    def _op_text(cls, value: str) -> str:
        return value.strip()

    def record_id(self) -> str:
        value = self.data.get("_id", self.data.get("id"))
        if value is None or isinstance(value, bool | dict | list) or not str(value).strip():
            raise PayloadError("data has no record id (_id)")
        return str(value)

    def updated_at(self, fallback: datetime) -> datetime:
        """The record's own change time (`updateTime`, ISO 8601 with Z); the arrival time when absent."""
        raw = self.data.get("updateTime", self.data.get("updated_at"))
        if raw is None or raw == "":
            return fallback
        if not isinstance(raw, str):
            raise PayloadError("data.updateTime is not an ISO 8601 string")
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError("data.updateTime is not an ISO 8601 string") from None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_event(body: bytes) -> PushEvent:
    """The envelope, or PayloadError with a message that quotes no payload value."""
    try:
        data = load_json(body, limit=MAX_BODY_BYTES)  # the limits every input path shares
    except LimitExceeded as exc:
        raise PayloadError(f"body refused: {exc}") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise PayloadError("body is not JSON") from None
    try:
        event = PushEvent.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) or "body" for error in exc.errors()})
        kinds = sorted({error["type"] for error in exc.errors()})
        if "json_invalid" in kinds:
            raise PayloadError("body is not JSON") from None
        raise PayloadError(f"invalid envelope ({', '.join(fields)}: {', '.join(kinds)})") from None
    event.record_id()
    return event
