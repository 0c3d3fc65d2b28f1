"""Our Prometheus metrics, recorded by worker processes beside Dramatiq's own.

Worker processes write them to Prometheus' multiprocess directory (Dramatiq's, so one
scrape sees both); the ops server (`sync_worker.ops_server`) serves the sum. Until
`enable()` runs (in a worker, after Dramatiq set that directory up) every recorder is a
no-op, so the CLI and a web service importing the client never load prometheus_client.
Names and example queries: docs/observability.md.
"""

from __future__ import annotations

from typing import Any

SYNC_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

_metrics: dict[str, Any] | None = None


def enable() -> None:
    """Create the metrics in this process (PROMETHEUS_MULTIPROC_DIR must already be set)."""
    global _metrics
    import prometheus_client as prom  # here: only worker processes load it (see above)

    registry = prom.CollectorRegistry()  # values live in the multiprocess files, not here
    _metrics = {
        "steam_calls": prom.Counter(
            "sync_worker_steam_calls_total",
            "Steam HTTP calls by bucket and outcome (ok, 429, error).",
            ["bucket", "outcome"],
            registry=registry,
        ),
        "rate_limit_waits": prom.Counter(
            "sync_worker_rate_limit_waits_total",
            "Waits for rate-limit budget, pacing included, by bucket.",
            ["bucket"],
            registry=registry,
        ),
        "rate_limit_wait_seconds": prom.Counter(
            "sync_worker_rate_limit_wait_seconds_total",
            "Seconds spent waiting for rate-limit budget, by bucket.",
            ["bucket"],
            registry=registry,
        ),
        "rate_limit_deferrals": prom.Counter(
            "sync_worker_rate_limit_deferrals_total",
            "Jobs sent back to the queue because budget was further away than RATE_LIMIT_MAX_WAIT_S.",
            ["bucket"],
            registry=registry,
        ),
        "syncs": prom.Counter(
            "sync_worker_syncs_total",
            "Sync attempts that ended, by final status.",
            ["status"],
            registry=registry,
        ),
        "sync_duration": prom.Histogram(
            "sync_worker_sync_duration_seconds",
            "Duration of sync attempts that ended, by final status.",
            ["status"],
            buckets=SYNC_DURATION_BUCKETS,
            registry=registry,
        ),
        "games_written": prom.Counter(
            "sync_worker_games_written_total",
            "Games inserted, updated or marked removed by sync attempts, by final status.",
            ["status"],
            registry=registry,
        ),
        "dead_letters": prom.Counter(
            "sync_worker_dead_letters_total",
            "Messages given up on (dead-lettered), by actor and error code.",
            ["actor", "code"],
            registry=registry,
        ),
    }


def steam_call(bucket: str, outcome: str) -> None:
    """One Steam call ended: `ok`, `429` or `error`."""
    if _metrics is not None:
        _metrics["steam_calls"].labels(bucket, outcome).inc()


def rate_limit_wait(bucket: str, seconds: float) -> None:
    """A thread waited (or paced) for budget."""
    if _metrics is not None:
        _metrics["rate_limit_waits"].labels(bucket).inc()
        _metrics["rate_limit_wait_seconds"].labels(bucket).inc(seconds)


def rate_limit_deferral(bucket: str) -> None:
    """A job stepped back into the queue to wait for budget there."""
    if _metrics is not None:
        _metrics["rate_limit_deferrals"].labels(bucket).inc()


def sync_ended(status: str, duration_s: float, games_written: int) -> None:
    """A sync attempt reached a final status (completed, failed, cancelled, private...)."""
    if _metrics is not None:
        _metrics["syncs"].labels(status).inc()
        _metrics["sync_duration"].labels(status).observe(duration_s)
        _metrics["games_written"].labels(status).inc(games_written)


def dead_lettered(actor: str, code: str) -> None:
    """A message was given up on; a sync given up on ends `failed`."""
    if _metrics is not None:
        _metrics["dead_letters"].labels(actor, code).inc()
        if actor == "sync_library":
            _metrics["syncs"].labels("failed").inc()
