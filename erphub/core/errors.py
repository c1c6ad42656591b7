"""The error tree: every exception erphub raises, grouped by what the engine should do with it.

    ErphubError
    ├── UserInputError              bad input a person must fix; the CLI exits 2, no traceback
    │   ├── ConfigError             config YAML: file, line, field
    │   │   ├── ConfigProblems      every problem of one config at once (`problems`)
    │   │   └── UnknownEntity       a pipeline names an entity its connector does not offer (lists them)
    │   ├── MappingError            mapping YAML: file, line, column, field
    │   └── PayloadError            a pushed event's body is not an event (the webhook answers 400)
    ├── MappingPartError            one piece of a mapping is wrong; the compiler adds file and line
    │   ├── PathSyntaxError         a field path breaks the path grammar
    │   ├── ConditionError          a `when:` / filter condition is malformed
    │   ├── ArgError                a transform argument is wrong
    │   └── LookupTableError        a lookup table or column cannot be used
    ├── RecordRefused               one record cannot be mapped: a dead letter, never a stopped run
    │   ├── TransformError          a value a transform cannot convert
    │   ├── Reject                  raised inside a compiled plan; `apply` returns it as `Rejected`
    │   ├── Invalid                 a validation rule refused a value
    │   ├── UnknownReference        a code the target system does not know (a Tryton party, a unit)
    │   └── RecordWriteRefused      the target refused one record of a batch: becomes its RecordError
    ├── ConnectorError              talking to an external system
    │   ├── TransientError          may succeed if tried again (timeouts, 5xx, 429 after retries)
    │   │   └── RateLimitedError    the system said "slow down" (counted as a state, not a failure)
    │   ├── PermanentError          will fail the same way again (4xx, bad request)
    │   │   ├── AuthError           credentials rejected: nothing works until a person acts
    │   │   ├── CannotFetch         this entity cannot be read by id (a view computed from many records)
    │   │   └── VendorRefusal       the system's own business error, with its code
    │   │       ├── TrytonUserError     UserError, UserWarning, AccessError... of one Tryton call
    │   │       └── YonyouBusinessError a `code` other than "200" answered with HTTP 200
    │   └── ProtocolError           the system answered something that breaks its own contract
    ├── StoreError                  the state store cannot be reached or migrated
    │   └── PipelineBusy            another run holds the pipeline's lease (one run at a time)
    ├── RunFailed                   a pipeline run could not go on; its cursor did not move
    ├── ServiceError                a part of `erphub serve` could not start (the Prefect server child)
    └── RetryableAnswer             inside the HTTP client only: this attempt is worth another one
                                    (never escapes it: it is not a ConnectorError, so no handler
                                    of connector errors on the way can mistake it for one)

Per-record refusals reach the store as `records.RecordError` inside a `WriteResult` or a mapping
rejection, and end in the dead-letter store. Mapping and record errors also derive from ValueError
(LookupError for UnknownReference) where the code that catches them expects it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from erphub.core.records import RecordError


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


class ConfigProblems(ConfigError):
    """Every problem found in one config, so a person fixes them in one pass, not one per run."""

    def __init__(self, problems: list[UserInputError]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.message, file=first.file, line=first.line, column=first.column, field=first.field)

    def render(self) -> str:
        return "\n".join(problem.render() for problem in self.problems)


class MappingError(UserInputError):
    """A mapping file is wrong."""


class UnknownEntity(ConfigError):
    """An entity name a connector does not offer; the message lists the ones it does."""

    def __init__(self, kind: str, entity: str, valid: list[str] | tuple[str, ...] | set[str], *,
                 file: str | Path | None = None, line: int | None = None, column: int | None = None,
                 field: str | None = None) -> None:
        self.kind = kind
        self.entity = entity
        self.valid = sorted(valid)
        super().__init__(f"connector {kind!r} has no entity {entity!r}; valid entities: "
                         f"{', '.join(self.valid) or 'none'}", file=file, line=line, column=column, field=field)


class PayloadError(UserInputError):
    """A pushed body is not an event we can deliver. The message names the problem, never a value."""


class MappingPartError(ErphubError, ValueError):
    """A piece of a mapping is wrong; the compiler turns it into a MappingError with file and line."""


class PathSyntaxError(MappingPartError):
    """The path text does not follow the grammar."""


class ConditionError(MappingPartError):
    def __init__(self, message: str, where: Any) -> None:
        super().__init__(message)
        self.where = where  # the YAML path of the condition, for the location of the error


class ArgError(MappingPartError):
    """An argument is wrong in a way its model cannot say; `arg` names it for the error location."""

    def __init__(self, message: str, arg: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg


class LookupTableError(MappingPartError):
    """A table or column a mapping names cannot be used. `line` is the CSV line when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line


class RecordRefused(ErphubError):
    """One record cannot be mapped or addressed; it becomes a dead letter with this reason."""


class TransformError(RecordRefused, ValueError):
    """A value a transform cannot convert. `code` becomes the rejection code."""

    def __init__(self, message: str, code: str = "transform") -> None:
        super().__init__(message)
        self.code = code


class Reject(RecordRefused):
    """Raised inside a plan's closures; `apply` turns it into a Rejected."""

    __slots__ = ("code", "field", "reason")

    def __init__(self, field: str, reason: str, code: str) -> None:  # hot path: no super().__init__
        self.field = field
        self.reason = reason
        self.code = code


class Invalid(RecordRefused):
    """A validation rule refused a value (`code` names the rule)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: str, reason: str) -> None:  # hot path: no super().__init__
        self.code = code
        self.reason = reason


class UnknownReference(RecordRefused, LookupError):
    """A code that does not exist in the target system; `field` names the record field it came from."""

    def __init__(self, what: str, value: Any, field: str) -> None:
        self.field = field
        super().__init__(f"unknown {what} {value!r}")


class RecordWriteRefused(RecordRefused):
    """The target refused one record of a batch; `error` is what the dead letter records."""

    def __init__(self, code: str, message: str, field: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.error = RecordError(code=code, message=message, field=field, transient=transient)


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


class CannotFetch(PermanentError):
    """The entity exists but cannot be fetched by id (computed from several records): callers that
    would re-read a record fall back to what they hold."""


class VendorRefusal(PermanentError):
    """The system's own business refusal: `code` is its error kind or code, `detail` its message."""

    def __init__(self, code: str, detail: str, *, system: str = "", prefix: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{prefix}{detail}", system=system)


class TrytonUserError(VendorRefusal):
    """A Tryton business refusal (UserError, UserWarning, AccessError...) of one call."""

    def __init__(self, kind: str, message: str, *, system: str = "") -> None:
        self.kind = kind
        super().__init__(kind, message, system=system, prefix=f"{kind}: ")


class YonyouBusinessError(VendorRefusal):
    """A business refusal (`code` other than "200") answered with HTTP 200."""

    def __init__(self, code: str, message: str, *, system: str = "") -> None:
        self.vendor_message = message
        super().__init__(code, message, system=system, prefix=f"code {code}: ")


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


class ServiceError(ErphubError):
    """A part of `erphub serve` could not start or died (the Prefect server child); serve reports it in
    /healthz and its log, and keeps the webhook receiver and /metrics up."""


class RetryableAnswer(ErphubError):
    """Inside the HTTP client only: this attempt failed in a way worth retrying; `error` is raised if
    we give up."""

    def __init__(self, error: ConnectorError, reason: str, *, retry_after: float | None = None,
                 immediate: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.reason = reason
        self.retry_after = retry_after
        self.immediate = immediate
