"""Load a config file: YAML with line numbers, env files, `${env:X}` / `${file:P}` secrets, validation.

Every problem becomes a `ConfigError` naming the file, the line and the dotted field, so the CLI
can print one line and exit 2. Secret values are collected so the logging and dead-letter
redaction can strip them wherever they would appear.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from erphub.config.models import SECRET_REF, HubConfig, PipelineConfig
from erphub.core.errors import ConfigError, ConfigProblems
from erphub.core.files import lookups_beside, private_dir
from erphub.core.yamlsource import Locator, dotted, load_yaml

# `${env:NAME}` or `${env:NAME:-default}` inside a settings string; secrets allow no default.
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PACKAGED_CONFIGS = Path(__file__).resolve().parent  # the configs shipped with erphub (config/ in a checkout)
PACKAGED_DEMO = PACKAGED_CONFIGS / "demo.yaml"


@dataclass
class LoadedConfig:
    """A validated config plus what the rest of erphub needs to know about where it came from."""

    hub: HubConfig
    path: Path
    locator: Locator
    secret_values: list[str] = field(default_factory=list)
    packaged: bool = False  # one of the configs shipped with erphub (demo, processes, examples)
    warnings: list[ConfigError] = field(default_factory=list)  # `validate` shows them; `--strict` fails on them

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def state_base(self) -> Path:
        """Where relative state paths (the SQLite store) start: the config's folder, except for the configs
        shipped with erphub, whose state goes where it would if they sat in ./config/ of the current
        folder (an installed package is no place for a database)."""
        if self.packaged:
            return Path.cwd() / "config" / self.base_dir.relative_to(PACKAGED_CONFIGS)
        return self.base_dir

    @property
    def state_dir(self) -> Path:
        """The one folder this config's state lives in: the default store, Prefect's home, logs.

        `state_dir:` in the config (relative to its folder), else `.erphub/` beside the config; a
        config shipped with erphub keeps its state in `./.erphub/<name>/` of the current folder.
        """
        if self.hub.state_dir is not None:
            candidate = Path(self.hub.state_dir)
            return candidate if candidate.is_absolute() else (self.state_base / candidate).resolve()
        if self.packaged:
            return Path.cwd() / ".erphub" / self.path.stem
        return self.base_dir / ".erphub"

    def lookups_dir(self, pipeline: str) -> Path:
        """The lookup CSVs a pipeline's mapping reads: `lookups:` of the config, else the `lookups/`
        folder beside the mapping (in its own folder or the one above), never the installed package's."""
        if self.hub.lookups is not None:
            return self.resolve_path(self.hub.lookups)
        return lookups_beside(self.mapping_path(pipeline))

    def resolve_path(self, relative: str) -> Path:
        """Paths in a config file are relative to the file's own folder."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()

    def mapping_path(self, pipeline: str) -> Path:
        return self.resolve_path(self.hub.pipelines[pipeline].mapping)

    def place(self, *path: str | int) -> dict[str, Any]:
        """Where a config field is: the file, line, column and dotted field any UserInputError takes."""
        line, column = self.locator.find(path)
        return {"file": self.path, "line": line, "column": column, "field": dotted(path)}

    def error(self, message: str, *path: str | int) -> ConfigError:
        return ConfigError(message, **self.place(*path))

    def store_url(self) -> str:
        """SQLite paths in the store URL are relative to the config file's folder too (see `state_base`);
        no URL at all is `erphub.db` in the state folder."""
        url = self.hub.store.url
        prefix = "sqlite:///"
        if url is None:
            target = self.state_dir / "erphub.db"
            private_dir(target.parent)
            return prefix + str(target)
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            target = (self.state_base / url[len(prefix):]).resolve()
            private_dir(target.parent)
            return prefix + str(target)
        return url

    def pipeline(self, name: str) -> PipelineConfig:
        try:
            return self.hub.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.hub.pipelines)) or "none"
            raise ConfigError(f"unknown pipeline {name!r} (known: {known})", file=self.path,
                              field="pipeline") from None


def _read_env_file(path: Path, origin: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror}", file=origin, field="env_files") from None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError("expected NAME=VALUE", file=path, line=number)
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip("'\"")
    return values


class _Resolver:
    def __init__(self, path: Path, locator: Locator, env: Mapping[str, str]) -> None:
        self.path = path
        self.locator = locator
        self.env = env
        self.secrets: list[str] = []
        self.problems: list[ConfigError] = []  # every unresolvable reference, reported together
        self.warnings: list[ConfigError] = []

    def fail(self, message: str, where: Sequence[str | int]) -> ConfigError:
        line, column = self.locator.find(where)
        return ConfigError(message, file=self.path, line=line, column=column, field=dotted(where))

    def settings(self, value: Any, where: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self.settings(v, (*where, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.settings(v, (*where, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.problems.append(self.fail(f"environment variable {name} is not set", where))
            return ""

        return ENV_REF.sub(substitute, value)

    def secret(self, value: Any, where: tuple[str | int, ...]) -> str:
        """The secret's value; a problem is recorded (and a placeholder returned) so every one is reported."""
        try:
            return self._secret(value, where)
        except ConfigError as exc:
            self.problems.append(exc)
            return "<unresolved>"

    def _secret(self, value: Any, where: tuple[str | int, ...]) -> str:
        if not isinstance(value, str) or not SECRET_REF.match(value.strip()):
            raise self.fail(
                "secrets must be references, never inline values: write ${env:NAME} or ${file:PATH}", where
            )
        kind, ref = SECRET_REF.match(value.strip()).groups()  # type: ignore[union-attr]
        if kind == "env":
            if ":-" in ref:
                raise self.fail("a secret takes no default: write ${env:NAME} and set NAME "
                                f"(got ${{env:{ref}}})", where)
            if not ENV_NAME.match(ref):
                raise self.fail(f"{ref!r} is not an environment variable name", where)
            if ref not in self.env:
                raise self.fail(f"environment variable {ref} is not set", where)
            resolved = self.env[ref]
        else:
            secret_path = Path(ref) if Path(ref).is_absolute() else self.path.parent / ref
            try:
                resolved = secret_path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise self.fail(f"cannot read secret file {ref}: {reason}", where) from None
            if secret_path.stat().st_mode & 0o077:  # group or others may read it (or write it)
                self.warnings.append(self.fail(
                    f"secret file {ref} can be read by other users (mode {secret_path.stat().st_mode & 0o777:o}); "
                    f"chmod 600 {secret_path}", where))
        if not resolved.strip():
            raise self.fail("secret is empty", where)
        self.secrets.append(resolved)
        return resolved


def _validation_errors(exc: ValidationError, path: Path, locator: Locator) -> list[ConfigError]:
    problems: list[ConfigError] = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if part != "[key]")  # pydantic's marker for a bad dict key
        line, column = locator.find(loc)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif error["type"] == "missing":
            message = "field required"
        problems.append(ConfigError(message, file=path, line=line, column=column, field=dotted(loc)))
    return problems


def raise_problems(problems: Sequence[ConfigError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigProblems(list(problems))


def _check_references(config: LoadedConfig) -> list[ConfigError]:
    problems: list[ConfigError] = []
    for name in config.hub.pipelines:
        try:
            _check_pipeline(config, name)
        except ConfigError as exc:
            problems.append(exc)
    return problems


def _check_pipeline(config: LoadedConfig, name: str) -> None:
    hub = config.hub
    pipeline = hub.pipelines[name]
    for side in ("source", "target"):
        system = getattr(pipeline, side).system
        if system not in hub.systems:
            known = ", ".join(sorted(hub.systems)) or "none"
            raise config.error(f"unknown system {system!r} (known: {known})", "pipelines", name, side, "system")
    if pipeline.two_way is not None:
        reverse = hub.pipelines.get(pipeline.two_way.reverse)
        if reverse is None or reverse.two_way is None or reverse.two_way.reverse != name:
            raise config.error(
                f"the reverse pipeline {pipeline.two_way.reverse!r} must exist and name {name!r} as its reverse",
                "pipelines", name, "two_way", "reverse")
        if pipeline.two_way.conflict_rule == "owner_wins" and pipeline.two_way.owner not in (
                pipeline.source.system, pipeline.target.system):
            raise config.error("owner_wins needs `owner:` set to one of the two systems",
                               "pipelines", name, "two_way", "owner")
        if (reverse.source, reverse.target) != (pipeline.target, pipeline.source):
            raise config.error("a reverse pipeline must move the same entities the other way",
                               "pipelines", name, "two_way", "reverse")
    if pipeline.webhook is not None and pipeline.webhook.source not in hub.serve.webhooks:
        known = ", ".join(sorted(hub.serve.webhooks)) or "none"
        raise config.error(
            f"unknown webhook source {pipeline.webhook.source!r} (known: {known})",
            "pipelines", name, "webhook", "source",
        )
    if not config.mapping_path(name).is_file():
        raise config.error(f"mapping file not found: {config.mapping_path(name)}", "pipelines", name, "mapping")


def _url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).password or None


def _find_file(path: str | Path) -> Path:
    """The config file itself; never a packaged one in its place: a missing file says where we looked."""
    file = Path(path)
    if not file.is_file():
        where = file if file.is_absolute() else Path.cwd() / file
        what = "is a folder, not a config file" if file.is_dir() else "not found"
        raise ConfigError(f"config file {what}: looked for {where}; give --config FILE or set ERPHUB_CONFIG",
                          file=path, field="--config")
    return file.resolve()


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None, strict: bool = False) -> LoadedConfig:
    """Load and validate a config file; raise ConfigError with file, line and field on any problem.

    Every problem the file has is raised at once (`ConfigProblems`); with `strict`, warnings (a
    secret file others can read) are problems too.
    """
    file = _find_file(path)
    packaged = file.is_relative_to(PACKAGED_CONFIGS)  # however it was named: a flow run gets the full path
    raw, locator = load_yaml(file, ConfigError)
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping with `systems` and `pipelines`", file=file, line=1)

    env: dict[str, str] = {}
    env_files = raw.get("env_files") or []
    if not isinstance(env_files, list):
        env_files = []  # the model reports the wrong type below
    for index, env_file in enumerate(env_files):
        if not isinstance(env_file, str):
            continue
        env_path = Path(env_file) if Path(env_file).is_absolute() else file.parent / env_file
        if not env_path.is_file():
            line, column = locator.find(("env_files", index))
            raise ConfigError("env file not found", file=file, line=line, column=column, field=f"env_files[{index}]")
        env.update(_read_env_file(env_path, file))
    env.update(environ if environ is not None else os.environ)  # the real environment wins

    resolver = _Resolver(file, locator, env)
    # Webhook secrets first: they must stay references until the secret resolver reads them.
    webhook_secrets: dict[str, str] = {}
    serve = raw.get("serve")
    if isinstance(serve, dict) and isinstance(serve.get("webhooks"), dict):
        for source_name, source in serve["webhooks"].items():
            if isinstance(source, dict) and "secret" in source:
                webhook_secrets[source_name] = resolver.secret(
                    source.pop("secret"), ("serve", "webhooks", source_name, "secret"))
    for section in ("store", "serve", "metrics"):
        if isinstance(raw.get(section), dict):
            raw[section] = resolver.settings(raw[section], (section,))
    for source_name, value in webhook_secrets.items():
        raw["serve"]["webhooks"][source_name]["secret"] = value
    systems = raw.get("systems")
    if isinstance(systems, dict):
        for system_name, system in systems.items():
            if not isinstance(system, dict):
                continue
            if isinstance(system.get("settings"), dict):
                system["settings"] = resolver.settings(system["settings"], ("systems", system_name, "settings"))
            if isinstance(system.get("secrets"), dict):
                system["secrets"] = {
                    key: resolver.secret(value, ("systems", system_name, "secrets", key))
                    for key, value in system["secrets"].items()
                }

    problems: list[ConfigError] = list(resolver.problems)
    try:
        hub = HubConfig.model_validate(raw)
    except ValidationError as exc:
        raise_problems(sorted([*problems, *_validation_errors(exc, file, locator)], key=_position))
        raise AssertionError("unreachable") from None
    secrets = list(resolver.secrets)
    store_password = _url_password(hub.store.url) if hub.store.url else None
    if store_password:  # a database password substituted into store.url must be redacted like any secret
        secrets.append(store_password)
    loaded = LoadedConfig(hub=hub, path=file, locator=locator, secret_values=secrets, packaged=packaged,
                          warnings=list(resolver.warnings))
    problems += _check_references(loaded)
    if strict:
        problems += loaded.warnings
    raise_problems(sorted(problems, key=_position))
    return loaded


def _position(problem: ConfigError) -> tuple[int, int]:
    return (problem.line or 0, problem.column or 0)
