"""The error tree. Errors are grouped by what the engine should do with them.

    ErphubError
    ├── UserInputError            bad input a person must fix; the CLI exits 2, no traceback
    │   ├── ConfigError           config YAML: file, line, field
    │   └── MappingError          mapping YAML: file, line, column, field
    ├── ConnectorError            talking to an external system
    │   ├── TransientError        may succeed if tried again (timeouts, 5xx, 429 after retries)
    │   │   └── RateLimitedError  the system said "slow down" (counted as a state, not a failure)
    │   ├── PermanentError        will fail the same way again (4xx, bad request)
    │   │   └── AuthError         credentials rejected: nothing works until a person acts
    │   └── ProtocolError         the system answered something that breaks its own contract
    ├── StoreError                the state store cannot be reached or migrated
    │   └── PipelineBusy          another run holds the pipeline's lease (one run at a time)
    └── RunFailed                 a pipeline run could not go on; its cursor did not move

Per-record refusals are not exceptions: they travel as `records.RecordError` inside a
`WriteResult` or a mapping rejection and end in the dead-letter store.
"""

from __future__ import annotations

from pathlib import Path


class ErphubError(Exception):
    """Base of every error erphub raises on purpose."""


class UserInputError(ErphubError):
    """Input a person must fix. Carries where the problem is so the message can point at it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        subject = f" {self.field}:" if self.field else ""
        return f"{where}:{subject} {self.message}"


class ConfigError(UserInputError):
    """A config file is wrong."""


class MappingError(UserInputError):
    """A mapping file is wrong."""


class ConnectorError(ErphubError):
    """A call to an external system failed. `system` names the configured system."""

    def __init__(self, message: str, *, system: str = "", status: int | None = None) -> None:
        self.system = system
        self.status = status
        prefix = f"[{system}] " if system else ""
        super().__init__(f"{prefix}{message}")


class TransientError(ConnectorError):
    """Worth retrying later."""


class RateLimitedError(TransientError):
    """The system throttled us; `retry_after` is its own hint in seconds, when it gave one."""

    def __init__(
        self, message: str, *, system: str = "", status: int | None = 429, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, system=system, status=status)


class PermanentError(ConnectorError):
    """Retrying will not help."""


class AuthError(PermanentError):
    """Credentials were rejected."""


class ProtocolError(ConnectorError):
    """The answer did not follow the system's documented contract."""


class StoreError(ErphubError):
    """The state store failed."""


class PipelineBusy(StoreError):
    """Another run of the same pipeline holds its lease, and did not let go in time."""


class RunFailed(ErphubError):
    """A run stopped before the end; nothing after the last committed batch was lost."""

    def __init__(self, message: str, *, pipeline: str, run_id: str, cause: BaseException | None = None) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.cause = cause
        super().__init__(f"pipeline {pipeline} run {run_id}: {message}")
