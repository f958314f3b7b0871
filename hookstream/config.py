"""Settings: loaded once at the entry point, from YAML and a few environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hookstream.core.durations import parse_duration
from hookstream.core.ratelimit import parse_rate
from hookstream.errors import ConfigError
from hookstream.kafka.connection import KafkaConnection

Duration = Annotated[float, BeforeValidator(parse_duration)]
Scheme = Literal[
    "stripe",
    "github",
    "shopify",
    "slack",
    "standard",
    "hmac",
    "twilio",
    "square",
    "discord",
    "sendgrid",
    "mailgun",
    "zoom",
    "twitch",
    "paddle",
    "linear",
    "intercom",
    "bitbucket",
    "gitlab",
    "adyen",
]
# Schemes that sign over the URL the sender was given, and those verified by public key.
URL_SIGNED_SCHEMES = frozenset({"twilio", "square"})
PUBLIC_KEY_SCHEMES = frozenset({"discord", "sendgrid"})

DEFAULT_CONFIG_FILE = Path("hookstream.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSettings(_Section):
    events: str = "webhooks.events"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)


class RetrySettings(_Section):
    schedule: list[Duration] = Field(default_factory=lambda: [30.0, 120.0, 600.0, 3600.0])
    jitter: float = Field(default=0.2, ge=0.0, lt=1.0)


class DedupeSettings(_Section):
    ttl: Duration = 7 * 86400.0


class IngressSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - the edge must listen beyond loopback in containers
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    produce_timeout: Duration = 5.0
    retry_after: int = Field(default=5, ge=1)
    # A body that has not fully arrived by then is refused with 408: slow clients hold no
    # memory or connection for long.
    body_timeout: Duration = 10.0
    # Webhook requests handled at once; past it the ingress answers 503 + Retry-After.
    max_concurrent_requests: int = Field(default=1024, ge=1)
    # The producer's local queue: past it the ingress answers 503 (never grows unbounded
    # while the broker is away).
    producer_queue_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


class WorkerSettings(_Section):
    group_id: str = "hookstream"
    # Warm copies of other workers' dedupe shards, for fast failover.
    standby_replicas: int = Field(default=1, ge=0)
    host: str = "0.0.0.0"  # noqa: S104 - metrics are scraped from outside the pod
    port: int = Field(default=6066, ge=0, le=65535)
    # Records being processed at once by one worker, and by one partition of it: past
    # either bound the worker stops taking records (docs/architecture.md, "Lanes").
    max_in_flight: int = Field(default=256, ge=1)
    max_in_flight_per_partition: int = Field(default=128, ge=1)
    # Records parked in one lane behind its blocking event (`ordering: entity`): an arrival
    # past it is dead-lettered, saying so (docs/architecture.md, "Order across retries").
    max_parked_per_lane: int = Field(default=10_000, ge=1)
    # How long the group waits for a worker that stopped heartbeating (a SIGKILL, a lost
    # node) before its partitions move to the others: the pause a crash costs. Heartbeats
    # run on the consumer's own thread, so a busy event loop does not trip it. Kafka
    # bounds it by the broker's group.min/max.session.timeout.ms (6 s to 30 min by default).
    session_timeout: Duration = Field(default=10.0, ge=1.0, le=1800.0)
    # Memory of each RocksDB the worker opens (one per table and partition it owns): what it
    # writes is held in memory up to table_write_buffer_bytes (twice over while the older
    # buffer is written to a file), what it reads is cached up to table_block_cache_bytes.
    # RocksDB's own defaults (64 MiB, three buffers, a 2 GiB cache each) let a worker's
    # memory grow by gigabytes before it levels off.
    table_write_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    table_block_cache_bytes: int = Field(default=8 * 1024 * 1024, ge=0)


class ConsoleSettings(_Section):
    """`hookstream console`: the operator web console and its event index."""

    host: str = "0.0.0.0"  # noqa: S104 - served to operators beyond the pod
    port: int = Field(default=8090, ge=0, le=65535)
    # Who may sign in: a YAML file of users (scrypt password hashes) and tokens (sha256),
    # with a role each (read_only | operator); `hookstream console hash` makes the hashes.
    users_file: Path | None = None
    # Signs the session cookie; replicas behind one Service must share it. Unset: a random
    # key per process (sign-ins do not survive a restart). The variable session_secret_env
    # names is read where it is set; only the console process requires it (the ingress and
    # worker share the file without it).
    session_secret: SecretStr | None = None
    session_secret_env: str | None = None
    session_ttl: Duration = 12 * 3600.0
    # Where "view trace" links point: `{jaeger_url}/trace/{trace_id}`.
    jaeger_url: str = "http://localhost:16686"
    # The event index (SQLite); default <data_dir>/index/events.sqlite.
    index_path: Path | None = None
    # How often the index reads what the topics gained.
    refresh: Duration = 1.0
    # Sent to browsers as Secure cookies only (behind TLS).
    secure_cookies: bool = False

    def require_session_secret(self) -> None:
        """Raise if session_secret_env names a variable this process was not given."""
        if self.session_secret_env and self.session_secret is None:
            raise ConfigError(
                "console.session_secret_env",
                f"environment variable {self.session_secret_env} is not set",
            )

    @field_validator("jaeger_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")


class _Retiring(_Section):
    not_after: float | None = None

    @field_validator("not_after", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> Any:
        if isinstance(value, str):
            from datetime import datetime

            return datetime.fromisoformat(value).timestamp()
        if hasattr(value, "timestamp"):
            return value.timestamp()
        return value


class SecretEntry(_Retiring):
    """One signing secret; ``not_after`` (epoch seconds or ISO time) retires it."""

    value: SecretStr


class PublicKeyEntry(_Retiring):
    """One verification key (not secret); ``not_after`` retires it like a secret."""

    value: str


def _secret_entry(value: Any) -> Any:
    return {"value": value} if isinstance(value, str) else value


class SourceSettings(_Section):
    scheme: Scheme
    secrets: list[Annotated[SecretEntry, BeforeValidator(_secret_entry)]] = Field(
        default_factory=list
    )
    secrets_env: str | None = None
    secrets_file: Path | None = None
    tolerance: Duration = 300.0
    event_id: str | None = None
    event_type: str | None = None
    entity_id: str | None = None
    # entity: an entity's later events wait behind one in a retry tier or the DLQ; none: not
    ordering: Literal["entity", "none"] = "entity"
    # what a lane does when its blocking event is dead-lettered: wait (hold) or move on (skip)
    on_dead_letter: Literal["hold", "skip"] = "hold"
    # URL-signing schemes (twilio, square): the URL the sender signs, as configured there
    public_url: str | None = Field(default=None, validate_default=True)
    # public-key schemes (discord, sendgrid): verification keys, rotated like secrets
    public_keys: list[Annotated[PublicKeyEntry, BeforeValidator(_secret_entry)]] = Field(
        default_factory=list
    )
    # public-key schemes: the private key `hookstream send` signs with (local trials only)
    signing_key: SecretStr | None = None
    # generic hmac scheme
    header: str | None = None
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_content: str | None = None

    @field_validator("event_id", "event_type", "entity_id")
    @classmethod
    def _locator(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("/", "header:")) or value == "":
            return value
        raise ValueError("must be a JSON pointer (/a/b) or header:NAME")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        scheme = info.data.get("scheme")
        if value is None:
            if scheme in URL_SIGNED_SCHEMES:
                raise ValueError(f"scheme {scheme} needs the URL the sender signs")
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _scheme_needs(self) -> SourceSettings:
        if self.scheme == "hmac" and not self.header:
            raise ValueError("scheme hmac needs `header` (the signature header's name)")
        return self


class BreakerSettings(_Section):
    """A destination's circuit breaker (hookstream.core.breaker)."""

    failures: int = Field(default=10, ge=1)  # open after this many failures in a row
    cooldown: Duration = Field(default=30.0, ge=0)  # then one probe after this long
    ratio: float | None = Field(default=None, gt=0, le=1)  # or this share failed in `window`
    window: Duration = Field(default=60.0, gt=0)
    min_attempts: int = Field(default=20, ge=1)  # the ratio counts once the window has these


def _rate(value: Any) -> Any:
    return None if value is None else parse_rate(value)


class DestinationSettings(_Section):
    url: str | None = None
    handler: str | None = None
    sources: list[str] | None = None
    event_types: list[str] | None = None
    timeout: Duration = 10.0
    secret: SecretStr | None = None
    # Isolation (docs/architecture.md, "Destinations"): concurrent requests, requests a second
    # (`50/s`, a token bucket), the breaker (null: none), and how long an event may wait in
    # its lane for them before it is deferred to a retry tier without spending an attempt.
    max_in_flight: int = Field(default=64, ge=1)
    rate_limit: Annotated[float | None, BeforeValidator(_rate)] = None
    breaker: BreakerSettings | None = Field(default_factory=BreakerSettings)
    max_wait: Duration = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> DestinationSettings:
        if (self.url is None) == (self.handler is None):
            raise ValueError("give exactly one of `url` or `handler`")
        if self.handler is not None and ":" not in self.handler:
            raise ValueError("handler must be `module:function`")
        return self


class Settings(BaseSettings):
    """The whole configuration of one hookstream deployment."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    kafka: KafkaConnection = Field(default_factory=KafkaConnection)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    dedupe: DedupeSettings = Field(default_factory=DedupeSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    data_dir: Path = Path(".hookstream")
    # exactly_once: consume -> retry/DLQ/audit writes -> offset commit in one Kafka transaction.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"

    @model_validator(mode="after")
    def _destinations_name_known_sources(self) -> Settings:
        for name, destination in self.destinations.items():
            for source in destination.sources or []:
                if source not in self.sources:
                    raise ValueError(f"destinations.{name}.sources names unknown source {source!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what load_settings hands over: the merged file and environment overrides.
        return (init_settings,)


def config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file to read: --config, else $HOOKSTREAM_CONFIG, else ./hookstream.yaml if present."""
    if explicit:
        return Path(explicit)
    if environ.get("HOOKSTREAM_CONFIG"):
        return Path(environ["HOOKSTREAM_CONFIG"])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the config file, apply environment overrides, resolve secrets, validate."""
    env = os.environ if environ is None else environ
    file = config_path(path, env)
    data = _read_yaml(file) if file is not None else {}
    _apply_env(data, env)
    _resolve_secrets(data, env, base=file.parent if file is not None else Path.cwd())
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _config_error(exc) from None


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"no such file: {file}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(file), f"not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(str(file), "the top level must be a mapping")
    return loaded


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    kafka = data.get("kafka") or {}
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka["bootstrap_servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    client_env = kafka.get("client_env") or {}
    if isinstance(client_env, dict) and client_env:
        client = dict(kafka.get("client") or {})
        for key, variable in client_env.items():
            if str(variable) not in env:
                raise ConfigError(
                    f"kafka.client_env.{key}", f"environment variable {variable} is not set"
                )
            client[str(key)] = env[str(variable)]
        kafka["client"] = client
    if kafka:
        data["kafka"] = kafka
    if env.get("HOOKSTREAM_DATA_DIR"):
        data["data_dir"] = env["HOOKSTREAM_DATA_DIR"]


def _resolve_secrets(data: dict[str, Any], env: Mapping[str, str], base: Path) -> None:
    _resolve_console(data, env, base)
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        return
    for name, source in sources.items():
        if not isinstance(source, dict):
            continue
        extra: list[str] = []
        if source.get("secrets_env"):
            var = str(source["secrets_env"])
            if var not in env:
                raise ConfigError(
                    f"sources.{name}.secrets_env", f"environment variable {var} is not set"
                )
            extra += [s.strip() for s in env[var].split(",") if s.strip()]
        if source.get("secrets_file"):
            file = base / str(source["secrets_file"])
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"sources.{name}.secrets_file", f"cannot read {file}: {exc.strerror}"
                ) from None
            extra += [s.strip() for s in text.replace(",", "\n").splitlines() if s.strip()]
        if extra:
            source["secrets"] = list(source.get("secrets") or []) + extra
        if source.get("scheme") in PUBLIC_KEY_SCHEMES:
            if not source.get("public_keys"):
                raise ConfigError(f"sources.{name}.public_keys", "no public key given")
            continue
        if not source.get("secrets"):
            raise ConfigError(
                f"sources.{name}.secrets", "no secret given (secrets, secrets_env or secrets_file)"
            )


def _resolve_console(data: dict[str, Any], env: Mapping[str, str], base: Path) -> None:
    console = data.get("console")
    if not isinstance(console, dict):
        return
    var = console.get("session_secret_env")
    if var and env.get(str(var)):
        console["session_secret"] = env[str(var)]
    if console.get("users_file"):
        console["users_file"] = str(base / str(console["users_file"]))


def _config_error(exc: ValidationError) -> ConfigError:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
        message = error["msg"].removeprefix("Value error, ")
        problems.append((key or "config", message))
    key, problem = problems[0]
    if len(problems) > 1:
        problem += "".join(f"; {k}: {p}" for k, p in problems[1:])
    return ConfigError(key, problem)
