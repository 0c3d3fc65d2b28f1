"""Settings and URL resolution: embedded outside production, an error inside it."""

from __future__ import annotations

import pytest

from sync_worker.errors import ConfigurationError
from sync_worker.runtime import redis_client, resolve_settings
from sync_worker.settings import Settings


def make(**values) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_without_urls_is_a_clear_startup_error(monkeypatch):
    """No silent embedded servers in production: the error names what is missing."""
    monkeypatch.delenv("DYNO", raising=False)
    with pytest.raises(ConfigurationError, match="DATABASE_URL and REDIS_URL must be set"):
        resolve_settings(make(sync_worker_env="production"))
    with pytest.raises(ConfigurationError, match=r"^REDIS_URL must be set"):
        resolve_settings(make(sync_worker_env="production", database_url="postgresql:///x"))


def test_a_heroku_dyno_counts_as_production(monkeypatch):
    """Heroku sets DYNO on every dyno; forgetting SYNC_WORKER_ENV must not start embedded servers."""
    monkeypatch.setenv("DYNO", "worker.1")
    settings = make()
    assert settings.is_production and settings.effective_log_format == "json"
    with pytest.raises(ConfigurationError):
        resolve_settings(settings)


def test_explicit_urls_are_used_as_they_are():
    """Given both URLs, nothing embedded starts and nothing changes."""
    settings = make(database_url="postgresql://db/x", redis_url="redis://r:6379/0")
    assert resolve_settings(settings) is settings


def test_env_names_follow_the_contract(monkeypatch):
    """The Heroku add-on names and the documented knobs are read from the environment."""
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h/db")
    monkeypatch.setenv("STEAM_API_KEY", "UNIQUE-KEY-4711")
    monkeypatch.setenv("SYNC_BATCH_SIZE", "250")
    settings = make()
    assert settings.database_url == "postgres://u:p@h/db" and settings.sync_batch_size == 250
    assert "UNIQUE-KEY-4711" not in repr(settings)  # the key is a SecretStr


def test_rediss_urls_verify_certificates_unless_told_not_to():
    """Heroku Redis' self-signed certificate: REDIS_TLS_VERIFY=false accepts it; the
    default checks it; plain redis:// and unix:// get no TLS options at all."""
    url = "rediss://:secret@redis.example:6380/0"
    strict = redis_client(url, make()).connection_pool.connection_kwargs
    lenient = redis_client(url, make(redis_tls_verify=False)).connection_pool.connection_kwargs
    assert strict["ssl_cert_reqs"] == "required"
    assert lenient["ssl_cert_reqs"] == "none"
    for plain in ("redis://localhost:6379/0", "unix:///tmp/redis.sock?db=1"):
        assert "ssl_cert_reqs" not in redis_client(plain, make()).connection_pool.connection_kwargs
