"""Turn a loaded config into running parts: connectors, compiled plans, pipelines, the store.

`Hub` is what the CLI, the flows and `erphub serve` hold: it builds each connector once, compiles
each mapping once, and closes everything on exit.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from erphub.config.loader import LoadedConfig
from erphub.connectors.base import Connector, SupportsFetch, SystemContext
from erphub.connectors.registry import connector_class
from erphub.core.errors import ConfigError, ConfigProblems, UnknownEntity, UserInputError
from erphub.core.records import Direction, EntitySpec
from erphub.engine import Pipeline, TwoWaySpec, check_on_delete
from erphub.mappings.compiler import compile_mapping
from erphub.mappings.lookups import LookupTables
from erphub.mappings.schema_check import with_snapshot
from erphub.monitoring.redaction import add_secrets, redact_text
from erphub.store import Store
from erphub.webhooks.receiver import webhook_verifiers


def schedule_interval_seconds(cron: str) -> float:
    """Seconds between two consecutive fire times (the smallest gap over a day of fires)."""
    iterator = croniter(cron, 0)
    fires = [iterator.get_next(float) for _ in range(50)]
    return min(b - a for a, b in itertools.pairwise(fires))


class Hub:
    def __init__(self, config: LoadedConfig, *, transports: dict[str, Any] | None = None,
                 store: Store | None = None) -> None:
        self.config = config
        self.transports = transports or {}
        self._store = store
        self._connectors: dict[str, Connector] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._lookups: dict[Path, LookupTables] = {}
        add_secrets(config.secret_values)

    # -- pieces ------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.store_url())
            intervals = self.schedule_intervals()
            self._store.schedule_interval_by_pipeline.update(intervals)
            self._store.pipelines_in_config = frozenset(self.config.hub.pipelines)
            # Every enabled pipeline: its dead-letter series then exists (at 0) before its first dead letter.
            self._store.note_configured(name for name, p in self.config.hub.pipelines.items() if p.enabled)
        return self._store

    def schedule_intervals(self) -> dict[str, float]:
        return {name: schedule_interval_seconds(p.schedule)
                for name, p in self.config.hub.pipelines.items() if p.schedule and p.enabled}

    def lookup_tables(self, pipeline: str) -> LookupTables:
        """The deployment's code tables for this pipeline's mapping (config `lookups:`, or beside the mapping);
        one reader per folder, so every mapping of a run sees the same table."""
        directory = self.config.lookups_dir(pipeline)
        if directory not in self._lookups:
            self._lookups[directory] = LookupTables(directory)
        return self._lookups[directory]

    def redactor(self) -> Callable[[str], str]:
        secrets = list(self.config.secret_values)
        return lambda text: redact_text(text, secrets)

    def connector(self, system: str) -> Connector:
        if system in self._connectors:
            return self._connectors[system]
        spec = self.config.hub.systems[system]
        try:
            cls = connector_class(spec.connector)
        except ConfigError as exc:  # the registry knows the valid names; the config knows where
            raise self.config.error(exc.message, "systems", system, "connector") from None
        merged: dict[str, Any] = {**spec.settings, **{k: v.get_secret_value() for k, v in spec.secrets.items()}}
        try:
            settings = cls.settings_model.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = tuple(first["loc"])
            section = "secrets" if loc and loc[0] in spec.secrets else "settings"
            message = "unknown setting (check the spelling)" if first["type"] == "extra_forbidden" else first["msg"]
            raise self.config.error(f"{spec.connector}: {message}", "systems", system, section, *loc) from None
        context = SystemContext(
            name=system,
            rate_limit_per_second=spec.rate_limit.per_second,
            burst=spec.rate_limit.burst,
            max_concurrency=spec.rate_limit.max_concurrency,
            shared_limit_url=self._shared_limit_url(system) if spec.rate_limit.shared else None,
            endpoint_rates=self._endpoint_rates(system, cls),
            connect_timeout_s=spec.timeouts.connect_s,
            read_timeout_s=spec.timeouts.read_s,
            max_attempts=spec.retry.max_attempts,
            max_retry_seconds=spec.retry.max_seconds,
            secrets=tuple(v.get_secret_value() for v in spec.secrets.values()),
            transport=self.transports.get(system),
        )
        connector: Connector = cls(settings, context)
        self._connectors[system] = connector
        return connector

    def _endpoint_rates(self, system: str, cls: type[Connector]) -> dict[str, float]:
        """`rate_limit: {endpoints: ...}`, each name one the connector documents a limit for."""
        wanted = self.config.hub.systems[system].rate_limit.endpoints
        known = getattr(cls, "endpoint_rates", {})
        for name in wanted:
            if name not in known:
                choices = ", ".join(sorted(known)) or "none: the vendor documents one limit for the system"
                raise self.config.error(f"{cls.kind} has no per-endpoint limit named {name!r} (known: {choices})",
                                        "systems", system, "rate_limit", "endpoints", name)
        return dict(wanted)

    def _shared_limit_url(self, system: str) -> str:
        """The store's URL, where a `rate_limit: {shared: true}` system keeps its one hub-wide bucket."""
        url = self.config.store_url()
        if not url.startswith("postgresql"):
            raise self.config.error("a shared rate limit needs the store on PostgreSQL (store.url: postgresql+psycopg://...)",
                                    "systems", system, "rate_limit", "shared")
        if self.config.hub.systems[system].rate_limit.per_second is None:
            raise self.config.error("a shared rate limit needs per_second", "systems", system, "rate_limit", "shared")
        # Opening the store migrates it: the bucket's table (migration 0009) is there before its first turn.
        return self.store.url

    def entity_spec(self, pipeline: str, side: str, direction: Direction) -> EntitySpec:
        endpoint = getattr(self.config.hub.pipelines[pipeline], side)
        connector = self.connector(endpoint.system)
        specs = connector.entities()
        if endpoint.entity not in specs:
            raise UnknownEntity(connector.kind, endpoint.entity, list(specs),
                                **self.config.place("pipelines", pipeline, side, "entity"))
        spec = with_snapshot(specs[endpoint.entity], self.config.state_base, endpoint.system)  # discovered schema
        if not spec.can(direction):
            raise self.config.error(
                f"connector {connector.kind!r} cannot {direction.value} {endpoint.entity!r}",
                "pipelines", pipeline, side, "entity")
        return spec

    def _lag_s(self, name: str) -> float:
        """The overlap window of a pipeline's source system: also its clock-skew allowance."""
        cfg = self.config.pipeline(name)
        return cfg.lag_seconds if cfg.lag_seconds is not None else self.connector(cfg.source.system).read_lag_s

    def pipeline(self, name: str) -> Pipeline:
        if name in self._pipelines:
            return self._pipelines[name]
        cfg = self.config.pipeline(name)
        source_spec = self.entity_spec(name, "source", Direction.READ)
        if cfg.write_back is not None:
            self.entity_spec(name, "source", Direction.WRITE)  # the write-back goes to the source system
        target_spec = self.entity_spec(name, "target", Direction.WRITE)
        plan = compile_mapping(self.config.mapping_path(name), source=source_spec, target=target_spec,
                               params=cfg.params, tables=self.lookup_tables(name))
        if plan.source_entity != cfg.source.entity or plan.target_entity != cfg.target.entity:
            raise self.config.error(
                f"mapping {Path(plan.source_file).name} maps {plan.source_entity} -> {plan.target_entity}, "
                f"but the pipeline moves {cfg.source.entity} -> {cfg.target.entity}", "pipelines", name, "mapping")
        two_way = None
        if cfg.two_way is not None:
            if not isinstance(self.connector(cfg.target.system), SupportsFetch):
                raise self.config.error(
                    f"two-way sync needs a target that can fetch records by id; {cfg.target.system!r} cannot",
                    "pipelines", name, "two_way")
            two_way = TwoWaySpec(reverse=cfg.two_way.reverse, fields=dict(cfg.two_way.fields),
                                 rule=cfg.two_way.conflict_rule,
                                 owner="source" if cfg.two_way.owner == cfg.source.system else "target",
                                 skew_s=max(self._lag_s(name), self._lag_s(cfg.two_way.reverse)))
        pipeline = Pipeline(
            name=name, source_system=cfg.source.system, source_entity=cfg.source.entity,
            source=self.connector(cfg.source.system), target_system=cfg.target.system,
            target_entity=cfg.target.entity, target=self.connector(cfg.target.system), plan=plan,
            batch_size=cfg.batch_size or 0, page_size=cfg.page_size or 0, redact=self.redactor(), two_way=two_way,
            write_concurrency=self.config.hub.systems[cfg.target.system].rate_limit.max_concurrency or 1,
            write_back=(cfg.write_back.field, cfg.write_back.value) if cfg.write_back else None,
            create_missing=cfg.create_missing, lease_wait_s=cfg.busy_wait_s,
            lag_s=self._lag_s(name),
            on_delete=cfg.on_delete)
        problem = check_on_delete(pipeline)
        if problem is not None:
            raise self.config.error(problem, "pipelines", name, "on_delete")
        self._pipelines[name] = pipeline
        return pipeline

    def validate(self) -> list[str]:
        """Build every system and pipeline (connectors, entities, directions, mappings); the names checked.

        Every problem is collected, so one `erphub validate` shows them all (ConfigProblems)."""
        problems: list[UserInputError] = []
        for system in self.config.hub.systems:
            try:
                self.connector(system)
            except UserInputError as exc:
                problems.append(exc)
        for name in self.config.hub.pipelines:
            try:
                self.pipeline(name)
            except UserInputError as exc:
                if all(exc.render() != p.render() for p in problems):
                    problems.append(exc)
        try:
            webhook_verifiers(self.config)  # webhook kinds are connector capabilities: config/ cannot check them
        except UserInputError as exc:
            problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise ConfigProblems(problems)
        return list(self.config.hub.pipelines)

    def enabled_pipelines(self) -> list[str]:
        return [name for name, p in self.config.hub.pipelines.items() if p.enabled]

    def close(self) -> None:
        for connector in self._connectors.values():
            with contextlib.suppress(Exception):  # closing must never mask the error that made us close
                connector.close()
        self._connectors.clear()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
