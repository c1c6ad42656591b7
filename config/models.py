"""Pydantic models of an erphub config file: the store, the systems and the pipelines.

Connector settings stay an open dict here: each connector validates its own settings model, so
config/ never imports a connector (ARCHITECTURE.md's one-way arrows).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,62}$"
SECRET_REF = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimit(Strict):
    per_second: Annotated[float, Field(gt=0)] | None = None
    burst: Annotated[int, Field(ge=1)] | None = None
    max_concurrency: Annotated[int, Field(ge=1)] | None = None
    # One bucket for the whole hub, in the PostgreSQL store: every process on every machine takes its
    # turns from it (README "Scaling out"). Needs `per_second` and a postgresql store URL.
    shared: bool = False
    # Per-endpoint limits in place of those the connector documents for its vendor's public service
    # (a private deployment, a raised quota): `endpoints: {data/list: 60}`. Names are the connector's
    # own; a name it does not know is a config error. They stay per process, shared or not.
    endpoints: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)


class Timeouts(Strict):
    connect_s: Annotated[float, Field(gt=0)] = 5.0
    read_s: Annotated[float, Field(gt=0)] = 30.0


class RetryPolicy(Strict):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    max_seconds: Annotated[float, Field(gt=0)] = 60.0


class SystemConfig(Strict):
    connector: str
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    # Resolved secret values (the loader replaces `${env:X}` / `${file:P}` references before validation).
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("settings")
    @classmethod
    def _no_secret_in_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            lowered = key.lower()
            if any(word in lowered for word in ("password", "secret", "token", "api_key", "apikey")):
                raise ValueError(
                    f"setting {key!r} looks like a secret; put it under `secrets:` as ${{env:NAME}} or ${{file:PATH}}"
                )
        return value


class Endpoint(Strict):
    system: str
    entity: str


class WebhookTrigger(Strict):
    source: str = Field(description="name of the webhook source under serve.webhooks")
    events: list[str] = Field(default_factory=lambda: ["data_create", "data_update"])


ConflictRule = Literal["owner_wins", "newest_wins", "hold"]


class TwoWay(Strict):
    """The same records also move the other way, through the `reverse` pipeline.

    `fields` names the fields both sides may change: this pipeline's target field -> the reverse
    pipeline's target field (e.g. `FTEL: phone`). Every other field has one owner: the mapping that
    lists it under `owns`. A conflict (both sides changed a two-way field since they last agreed)
    is settled by `conflict_rule`; under `owner_wins` the system named by `owner` wins.
    """

    reverse: str
    fields: dict[str, str] = Field(default_factory=dict)
    conflict_rule: ConflictRule = "newest_wins"
    owner: str | None = Field(default=None, description="system whose value wins under owner_wins")


class WriteBack(Strict):
    """After a record is delivered, write the target's number for it back into the source record."""

    field: str = Field(description="field of the source record that receives the value")
    value: Literal["key", "target_id"] = Field(
        default="key", description="the match key (e.g. the ERP customer number) or the target's own record id")


def _cron(value: str | None) -> str | None:
    if value is None:
        return value
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(f"invalid cron expression {value!r} (five fields: minute hour day month weekday)")
    return value


class ReconcileConfig(Strict):
    """`erphub serve` reconciles the pipeline on this schedule (as `erphub reconcile`, with `--repair`
    when `repair` is true) and publishes `erphub_drift_records`.

    Default: a pipeline whose source entity says its vendor sets no timestamp on some state changes
    (`EntitySpec.state_changes_timestamped` false: Kingdee, whose Submit and UnAudit set no date) and
    that has no `reconcile:` gets DEFAULT_RECONCILE, a daily reconcile with repair, since such a change is
    never read by a run and repair is the only way it reaches the target. An explicit `reconcile:` always
    wins; `reconcile: {schedule: null}` turns scheduled reconcile off."""

    schedule: str | None = Field(description="cron expression, e.g. '0 3 * * *'; null: no scheduled reconcile")
    repair: bool = False

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return _cron(value)


# What `erphub serve` gives a pipeline over an entity without state-change timestamps (see ReconcileConfig).
DEFAULT_RECONCILE = ReconcileConfig(schedule="17 3 * * *", repair=True)


OnDelete = Literal["ignore", "deactivate", "delete"]


class PipelineConfig(Strict):
    description: str = ""
    source: Endpoint
    target: Endpoint
    mapping: str
    # `${param:NAME}` values for this pipeline's mapping (over the mapping's own `params:` defaults)
    params: dict[str, str | int | float] = Field(default_factory=dict)
    schedule: str | None = Field(default=None, description="cron expression, e.g. '*/15 * * * *'")
    webhook: WebhookTrigger | None = None
    # Unset: the vendors' maxima, the target connector's largest write batch and the source's largest
    # read page (each connector names its vendor's documented limit).
    batch_size: Annotated[int | None, Field(ge=1, le=1000)] = None
    page_size: Annotated[int | None, Field(ge=1, le=5000)] = None
    enabled: bool = True
    # The overlap window of incremental reads: each run re-reads from cursor - lag_seconds (links make
    # the re-read harmless). Unset: the source connector's default (60 s for most systems).
    lag_seconds: Annotated[float | None, Field(ge=0)] = None
    two_way: TwoWay | None = None
    write_back: WriteBack | None = None
    # false: this pipeline only updates records the target already has (found by link or match key);
    # a record with no counterpart is skipped, never created (status write-backs into a CRM, say).
    create_missing: bool = True
    # One run of a pipeline at a time: how long a run waits for another run of it to finish.
    busy_wait_s: Annotated[float, Field(ge=0)] = 300.0
    flow_retries: Annotated[int, Field(ge=0, le=5)] = 1
    flow_retry_delay_s: Annotated[float, Field(ge=0)] = 30.0
    reconcile: ReconcileConfig | None = None
    # What a record deleted in the source does to its target record (a Jiandaoyun `data_remove` push,
    # or reconcile's `extra` with --repair): nothing, deactivate it (Kingdee: Forbid), or delete it.
    on_delete: OnDelete = "ignore"

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return _cron(value)


STORE_BACKENDS = ("sqlite", "postgresql")


class StoreConfig(Strict):
    # None: `erphub.db` in the config's state folder (`state_dir`).
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(value)
            _ = parsed.port  # a port that is not a number fails here, not at the first query
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a database URL ({exc.__class__.__name__}); e.g. sqlite:///state.db or "
                             "postgresql+psycopg://erphub:${env:PGPASSWORD}@db.example.com/erphub") from None
        try:
            parsed.get_dialect()  # `notadb://x` parses as a URL; only a known database makes a store
        except ArgumentError:
            raise ValueError(f"unknown database {parsed.drivername!r}: the store is sqlite or "
                             "postgresql+psycopg") from None
        except ImportError as exc:
            raise ValueError(f"the database driver for {parsed.drivername!r} is not installed ({exc.name})") from None
        if parsed.get_backend_name() not in STORE_BACKENDS:
            # The store's per-batch upserts (store.bulk) and its tests exist for these two only.
            raise ValueError(f"the store runs on sqlite or postgresql+psycopg, not {parsed.get_backend_name()}")
        return value


class WebhookSource(Strict):
    # `hmac`, or a connector that verifies its own pushes (`jiandaoyun`). config/ cannot import the
    # connector registry, so `erphub serve` / `erphub validate` check the name (webhooks.receiver).
    kind: str = Field(description="hmac, or the kind of a connector that verifies its own pushes")
    secret: SecretStr
    max_age_s: Annotated[float, Field(gt=0)] = 300.0
    header: str = "X-Signature"


class InboxSettings(Strict):
    """How `erphub serve` works through accepted webhook events."""

    batch_size: int = Field(default=100, ge=1, le=1000)
    poll_interval_s: float = Field(default=1.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100, description="then the event becomes a dead letter")
    base_delay_s: float = Field(default=2.0, ge=0)
    max_delay_s: float = Field(default=600.0, ge=0)
    retention_s: float = Field(default=7 * 24 * 3600.0, gt=0, description="how long done events are kept")


class ServeConfig(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464
    webhooks: dict[str, WebhookSource] = Field(default_factory=dict)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    # The Prefect UI of the embedded Prefect server (flow runs named PIPELINE-RUN_ID); off: the
    # server's port is loopback-only and unauthenticated, so it is opt-in.
    prefect_ui: bool = False


class MetricsConfig(Strict):
    pushgateway_url: str | None = None
    instance: str | None = Field(default=None, description="Pushgateway grouping key (default: the host name)")
    # /metrics on its own listener, apart from the public webhook one (serve.host/serve.port):
    # with `port` set, the webhook listener stops serving /metrics.
    host: str | None = Field(default=None, description="bind address of the metrics listener (default serve.host)")
    port: Annotated[int, Field(ge=0, le=65535)] | None = None


class LoggingConfig(Strict):
    """Where erphub's log lines go besides stderr, and how much of them."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    file: str | None = Field(default=None, description="JSON lines appended here (relative: to the config file)")
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="rotate the file at this size")
    backups: int = Field(default=5, ge=0, le=100, description="rotated files kept (PATH.1 ... PATH.N)")


class HubConfig(Strict):
    version: Literal[1] = 1
    env_files: list[str] = Field(default_factory=list)
    # One folder for everything this deployment keeps: the default SQLite store, Prefect's home, logs.
    # Relative to the config's folder; default `.erphub/` beside the config.
    state_dir: str | None = None
    # The folder of lookup CSVs every mapping of this config reads; relative to the config's folder.
    # Default: the `lookups/` folder beside the mappings (the mapping's folder or the one above it).
    lookups: str | None = None
    store: StoreConfig = Field(default_factory=StoreConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    systems: dict[Annotated[str, Field(pattern=NAME_PATTERN)], SystemConfig]
    pipelines: dict[Annotated[str, Field(pattern=NAME_PATTERN)], PipelineConfig]
