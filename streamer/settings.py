"""Settings: one typed, frozen object built once at start-up and passed down.

Sources, strongest first: ``STREAMER_*`` environment variables, then the YAML file (the
path in ``STREAMER_CONFIG``, else the packaged default), then the defaults. Invalid
settings raise :class:`SettingsError` naming each key by where its value came from
(``STREAMER_HTTP_PORT: ...``, ``config/streamer.yaml: http_port: ...``) and its problem,
never echoing the value (the MongoDB URI may hold a password).
"""

from __future__ import annotations

import os
from difflib import get_close_matches
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from .core.errors import SettingsError
from .core.partitions import MAX_PARTITIONS
from .core.yamlfile import yaml_problem
from .logs import mask_credentials
from .mongo.options import MongoOptions
from .mongo.retries import RetryPolicy
from .mongo.uri import uri_problem


def default_file(name: str) -> Path:
    """A file of the packaged defaults, ``streamer.defaults``: config/ in the repository.

    Read through importlib.resources, so the defaults are found from any working
    directory. The package is always installed as files (never zipped), so the resource
    is a real path that YAML loaders and error messages can name.
    """
    return Path(str(files("streamer.defaults") / name))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMER_", extra="forbid", frozen=True)

    mongodb_uri: SecretStr = SecretStr("mongodb://localhost:27017")
    database: str = Field("myapp", min_length=1)
    # Connection options from the guide (AsyncIOMotorClient keyword arguments).
    max_pool_size: int = Field(50, ge=1)
    min_pool_size: int = Field(0, ge=0)
    server_selection_timeout_ms: int = Field(5000, ge=1)
    connect_timeout_ms: int = Field(10000, ge=1)
    socket_timeout_ms: int = Field(30000, ge=1)
    server_api_version: Literal["1"] | None = None
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_certificate_key_file: Path | None = None
    tls_allow_invalid_certificates: bool = False
    # The service.
    driver: Literal["motor", "pymongo"] = "motor"
    low_stock_threshold: int = Field(10, ge=0)
    # An open alert resolves once stock exceeds threshold + hysteresis.
    alert_hysteresis: int = Field(0, ge=0)
    batch_size: int = Field(500, ge=1, le=100_000)
    max_batch_wait_ms: int = Field(200, ge=0)
    slow_command_ms: int = Field(100, ge=0)
    # A quiet stream still stores its postBatchResumeToken this often, so the stored
    # position never ages out of the oplog.
    idle_checkpoint_interval_s: float = Field(10.0, gt=0)
    # Retry budgets (streamer.mongo.retries, the one retry policy; every wait jittered).
    # One operation, all its retries included, gives up after retry_max_s; a retry
    # inside it (a commit's) gets what remains of that, never a fresh budget.
    retry_max_s: float = Field(30.0, gt=0)
    # Waits between tries: retry_initial_wait_s, doubling up to retry_max_wait_s.
    retry_initial_wait_s: float = Field(0.05, gt=0)
    retry_max_wait_s: float = Field(5.0, gt=0)
    # Once retry_max_s is spent the loop that lives through outages (a watcher, the
    # start-up connect) waits outage_backoff_s, doubling up to outage_backoff_max_s.
    outage_backoff_s: float = Field(1.0, gt=0)
    outage_backoff_max_s: float = Field(30.0, gt=0)
    # The declarative schema; default: the packaged config/schema.yaml.
    schema_path: Path = Field(default_factory=lambda: default_file("schema.yaml"))
    # Apply the schema at start-up; turn off where a separate, privileged job runs
    # `streamer bootstrap` and the service's own role cannot create indexes.
    bootstrap_on_start: bool = True
    # Scale-out: each stream read as this many partitions, which the running instances
    # share (streamer.core.partitions); 1 is one owner per stream, the others standing
    # by. stream_partitions overrides it per stream, e.g. {"orders": 8}.
    partitions: int = Field(1, ge=1, le=MAX_PARTITIONS)
    stream_partitions: dict[str, Annotated[int, Field(ge=1, le=MAX_PARTITIONS)]] = Field(
        default_factory=dict
    )
    # A split orders stream: each user's totals written by one partition, the others
    # deferring their share to it (streamer.core.deltas). Off, every partition writes
    # them and write conflicts (112) rerun batches; for comparison (make bench-scale).
    defer_shared_totals: bool = True
    # How often an idle partition looks for deferred shares to fold.
    fold_poll_s: float = Field(0.5, gt=0)
    # High availability: a stream's lease lasts this long unless renewed (every third).
    lease_ttl_s: float = Field(15.0, ge=1)
    # /readyz fails when an owned stream is further behind than this.
    ready_max_lag_s: float = Field(60.0, gt=0)
    # StreamerOplogHeadroomLow fires when a checkpoint is closer than this to falling off
    # the oplog; exported as streamer_oplog_headroom_threshold_seconds, which the rule
    # reads, so it is tuned here (small oplogs, the demo) rather than in the rule.
    oplog_headroom_alert_s: float = Field(3600.0, gt=0)
    # At most this many streamer_low_stock_alert_info series.
    max_alert_series: int = Field(1000, ge=0)
    # The name this instance uses in leases and checkpoints (default: the hostname).
    instance_id: str | None = None
    http_port: int = Field(8080, ge=0, le=65535)  # 0: any free port
    shutdown_grace_s: float = Field(20.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("mongodb_uri")
    @classmethod
    def _driver_accepts_the_uri(cls, value: SecretStr) -> SecretStr:
        uri = value.get_secret_value()
        shown = redact_uri(uri)
        problem = uri_problem(uri, shown)
        if problem is not None:
            raise ValueError(f"{problem} in {shown}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_in_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("min_pool_size")
    @classmethod
    def _pool_bounds(cls, value: int, info: ValidationInfo) -> int:
        # A field validator (max_pool_size is validated first), so the error names the
        # key and where its value came from.
        most = info.data.get("max_pool_size")
        if most is not None and value > most:
            raise ValueError(f"must not exceed max_pool_size ({most})")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = os.environ.get("STREAMER_CONFIG")
        path = Path(config) if config is not None else default_file("streamer.yaml")
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, path))

    @property
    def redacted_uri(self) -> str:
        return redact_uri(self.mongodb_uri.get_secret_value())

    def partitions_of(self, stream: str) -> int:
        """How many partitions ``stream`` is read as (its override, else ``partitions``)."""
        return self.stream_partitions.get(stream, self.partitions)

    def retry_policy(self) -> RetryPolicy:
        """The retry budgets, for :mod:`streamer.mongo.retries`."""
        return RetryPolicy(
            max_s=self.retry_max_s,
            initial_wait_s=self.retry_initial_wait_s,
            max_wait_s=self.retry_max_wait_s,
            outage_backoff_s=self.outage_backoff_s,
            outage_backoff_max_s=self.outage_backoff_max_s,
        )

    def mongo_options(self) -> MongoOptions:
        """The client's options, for :class:`streamer.mongo.client.Mongo`, which knows
        plain options and not these settings."""
        return MongoOptions(
            uri=self.mongodb_uri.get_secret_value(),
            database=self.database,
            driver=self.driver,
            max_pool_size=self.max_pool_size,
            min_pool_size=self.min_pool_size,
            server_selection_timeout_ms=self.server_selection_timeout_ms,
            connect_timeout_ms=self.connect_timeout_ms,
            socket_timeout_ms=self.socket_timeout_ms,
            server_api_version=self.server_api_version,
            tls=self.tls,
            tls_ca_file=self.tls_ca_file,
            tls_certificate_key_file=self.tls_certificate_key_file,
            tls_allow_invalid_certificates=self.tls_allow_invalid_certificates,
            slow_command_ms=self.slow_command_ms,
            retry=self.retry_policy(),
        )


def redact_uri(uri: str) -> str:
    """The URI with its password replaced, for logs and errors."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # not even a URL: mask whatever looks like credentials
        return mask_credentials(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"STREAMER_{field.upper()}"


def check_config_file(path: Path) -> dict[str, Any]:
    """The settings in ``path``: a YAML mapping (or nothing); else SettingsError.

    pydantic-settings would report a syntax error as a long traceback and a list as a
    ``dictionary update sequence`` error; this says where and what, in one line.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(yaml_problem(path, exc)) from None
    if data is not None and not isinstance(data, dict):
        raise SettingsError(
            f"{path}: the top level must be a mapping of settings (key: value), "
            f"not a {type(data).__name__}"
        )
    return data or {}


def in_environment(field: str) -> bool:
    """Whether a ``STREAMER_*`` variable sets ``field`` (pydantic-settings ignores case)."""
    name = env_name(field)
    return any(key.upper() == name for key in os.environ)


def source_of(field: str, config: Path, in_file: dict[str, Any]) -> str:
    """Where ``field``'s value came from, as an error names it: the variable, the file
    and key, or the key alone (a default or an argument)."""
    if in_environment(field):
        return env_name(field)
    if field in in_file:
        return f"{config}: {field}"
    return field


def problem_line(error: ErrorDetails, config: Path, in_file: dict[str, Any]) -> str:
    """One validation error: ``STREAMER_HTTP_PORT: ...`` or ``file: http_port: ...``."""
    loc = [str(p) for p in error["loc"]]
    if not loc:
        return error["msg"]
    where = source_of(loc[0], config, in_file) + "".join(f".{p}" for p in loc[1:])
    if error["type"] == "extra_forbidden":
        close = get_close_matches(loc[0], Settings.model_fields, n=1)
        return f"{where}: unknown setting" + (f" (did you mean {close[0]}?)" if close else "")
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, or raise SettingsError naming each bad key by its source:
    ``STREAMER_HTTP_PORT: ...`` for the environment, ``<file>: http_port: ...`` for the
    config file (values withheld)."""
    config = os.environ.get("STREAMER_CONFIG")
    if config is not None and not Path(config).is_file():
        raise SettingsError(f"STREAMER_CONFIG: no such file: {config}")
    path = Path(config) if config is not None else default_file("streamer.yaml")
    in_file = check_config_file(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [
            problem_line(error, path, in_file)
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SettingsError("; ".join(problems)) from None
