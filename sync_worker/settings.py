"""Typed configuration from the environment (and `.env`), built lazily, never at import."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError
from .urls import check_database_url, check_redis_url, url_secrets

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every knob of the service; env names are the field names in upper case."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Connections. Unset outside production: embedded servers under sync_worker_home.
    database_url: str | None = None
    redis_url: str | None = None
    # Fail fast when a server is unreachable: a CLI answers within seconds, a worker
    # refuses to boot instead of reporting ready and looping.
    # rediss:// only. Heroku Redis' certificate is self-signed: set false there (still
    # encrypted, but the server's identity is not checked). See docs/deploy.md.
    redis_tls_verify: bool = True
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    redis_connect_timeout_s: float = Field(default=2.0, gt=0)
    sync_worker_env: Literal["development", "test", "production"] = "development"
    # One per user, whatever the current directory: every command finds the same servers.
    sync_worker_home: Path = Field(default_factory=lambda: default_home())

    # Steam.
    steam_api_key: SecretStr | None = None
    steam_api_base_url: str = "https://api.steampowered.com"
    steam_store_base_url: str = "https://store.steampowered.com"
    steam_connect_timeout_s: float = 5.0
    steam_read_timeout_s: float = 30.0  # a 30k-game GetOwnedGames body is several MB
    steam_max_response_mb: float = Field(default=64, gt=0)  # 50,000 games are about 17 MB

    # Global rate limits (shared by every worker through Redis).
    steam_webapi_calls_per_window: int = Field(default=100, ge=1)
    steam_webapi_window_seconds: float = Field(default=300, gt=0)
    steam_daily_limit: int = Field(default=100_000, ge=1)  # per key, per UTC day
    steam_store_calls_per_window: int = Field(default=200, ge=1)
    steam_store_window_seconds: float = Field(default=300, gt=0)
    rate_limit_max_wait_s: float = 10.0  # a worker waits this long at most, then re-enqueues
    steam_429_backoff_s: float = 30.0  # first bucket-wide pause after a 429; doubles per 429
    steam_429_backoff_max_s: float = 900.0

    # Retries of transient failures (exponential backoff with jitter).
    retry_max: int = 5
    retry_min_backoff_s: float = 5.0
    retry_max_backoff_s: float = 600.0
    # An outage of our own PostgreSQL or Redis spends none of those retries: the job waits
    # (backing off up to OUTAGE_MAX_BACKOFF_S) for this long before retries count again.
    outage_patience_s: float = Field(default=1800.0, ge=0)
    outage_max_backoff_s: float = Field(default=30.0, gt=0)
    # A library `queued` or `syncing` this long with no live message and no running sync
    # (Redis restarted empty) is queued again by the next scheduler tick.
    reconcile_after_s: float = Field(default=600.0, gt=0)

    # Observability: the ops server of each `dramatiq` command (/metrics, /health); 0: none.
    metrics_port: int = Field(default=9191, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the container/dyno

    # Logging.
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "console"] | None = None  # None: json in production

    # Sync engine tuning.
    sync_batch_size: int = Field(
        default=5_000, ge=1, le=10_000
    )  # games per transaction (measured: bench)
    # Skip the slices of a library whose stored digest matches (docs/performance.md).
    # False writes every game, as the equivalence test's reference does.
    sync_differential: bool = True
    # The lease is renewed by a keeper thread every third of its TTL, so a live run keeps
    # it through any wait and a dead worker's lease frees itself within this many seconds.
    sync_lock_ttl_s: float = Field(default=15.0, gt=0)
    progress_ttl_s: int = 24 * 3600
    progress_min_interval_s: float = 0.5
    # De-duplication slots and cancellations name message ids and are checked against the
    # broker on use, so their TTLs only bound garbage: longer than any Dramatiq delay (7 days).
    pending_ttl_s: int = 8 * 24 * 3600
    cancel_ttl_s: int = 8 * 24 * 3600
    db_pool_max_size: int = 10

    # Auto-syncs (the scheduler process; see docs/scheduling.md).
    auto_sync_cron: str = "*/5 * * * *"
    # Share of the Web API budget auto-syncs may plan for; the rest stays free for users.
    auto_sync_budget_share: float = Field(default=0.75, gt=0, le=1)
    # A queued auto-sync is not picked again for this long, even if it has not run yet.
    auto_sync_claim_s: float = Field(default=3600, gt=0)

    # Store enrichment (the `low` queue; see docs/enrichment.md).
    enrich_max_age_days: int = Field(default=30, ge=1)  # details older than this are refetched
    enrich_chunk_size: int = Field(default=50, ge=1, le=1_000)  # apps per enrich_games message
    enrich_claim_s: int = Field(default=24 * 3600, ge=60)  # a queued app is not queued again

    # Worker recovery (see docs/operations.md for the measured times).
    worker_heartbeat_timeout_s: float = Field(default=10.0, gt=0)  # dead after this silence
    # Each process requeues dead workers' unacked jobs at most this often, on one of its
    # queues per broker command: with ~4 consumers that visits every queue about each second.
    broker_maintenance_interval_s: float = Field(default=0.25, gt=0)

    # GOG (docs/integration.md): its three hosts, the global `gog_api` budget (GOG
    # publishes no limit: two calls a second for every worker together), and the keys
    # that encrypt its tokens at rest (comma-separated Fernet keys; the first encrypts).
    gog_auth_base_url: str = "https://auth.gog.com"
    gog_embed_base_url: str = "https://embed.gog.com"
    gog_www_base_url: str = "https://www.gog.com"
    gog_calls_per_window: int = Field(default=120, ge=1)
    gog_window_seconds: float = Field(default=60, gt=0)
    credentials_key: SecretStr | None = None

    # The operator's dashboard (docs/dashboard.md). Required in production and on any
    # address but loopback; the read-only token shows everything and can do nothing.
    dashboard_token: SecretStr | None = None
    dashboard_readonly_token: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str | None) -> str | None:
        return check_database_url(value) if value else value

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str | None) -> str | None:
        return check_redis_url(value) if value else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def secrets(self) -> list[str]:
        """Every secret these settings hold, for the log redactor: the Steam key, the
        database and Redis passwords, the dashboard's tokens and the credentials keys."""
        tokens = (
            self.steam_api_key,
            self.dashboard_token,
            self.dashboard_readonly_token,
            self.credentials_key,
        )
        found = [
            *(token.get_secret_value() for token in tokens if token is not None),
            *self.credentials_keys,  # each alone too: a line may hold one of them
            *url_secrets(self.database_url),
            *url_secrets(self.redis_url),
        ]
        return [secret for secret in found if secret]

    @property
    def credentials_keys(self) -> list[str]:
        """The keys of CREDENTIALS_KEY, the one that encrypts first."""
        if self.credentials_key is None:
            return []
        return [k.strip() for k in self.credentials_key.get_secret_value().split(",") if k.strip()]

    @property
    def is_production(self) -> bool:
        """True on a production deployment: explicit env, or any Heroku dyno."""
        return self.sync_worker_env == "production" or "DYNO" in os.environ

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        """The log format to use when LOG_FORMAT is not set explicitly."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "console"


def default_home() -> Path:
    """The per-user data directory of the embedded servers (XDG: ~/.local/share/sync-worker)."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "sync-worker"


@lru_cache(maxsize=1)
def _cached_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_invalid_settings(exc)) from None


def describe_invalid_settings(exc: ValidationError) -> str:
    """One line naming each bad variable and what is wrong with it."""
    problems = [
        f"{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return "invalid configuration: " + "; ".join(problems)


_override: Settings | None = None


def get_settings() -> Settings:
    """The process's settings: an override if one is set, else read from the environment once."""
    return _override if _override is not None else _cached_settings()


def use_settings(settings: Settings | None) -> None:
    """Replace the process's settings (tests, the CLI after resolving URLs); None restores env."""
    global _override
    _override = settings
    _cached_settings.cache_clear()
