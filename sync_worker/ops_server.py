"""The ops HTTP server of a `dramatiq` command: `/metrics` for Prometheus, `/health` for
the platform's checks. Dramatiq runs `serve` in a process of its own (a "fork").

`/metrics` sums what every worker process of the host wrote to Prometheus' multiprocess
directory: Dramatiq's metrics and ours. `/health` is `sync-worker health` as JSON, 200
when healthy and 503 otherwise; `?min_workers=N` requires N live workers per queue.

The port is unauthenticated, so it is bounded: at most MAX_CONNECTIONS handled at once
(the rest wait in the listen backlog), idle connections dropped after IDLE_TIMEOUT_S,
one health check at a time on connections kept open, its answer reused for
HEALTH_CACHE_S: a flood of probes costs PostgreSQL one connection, not one each.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from .health import HealthChecker, HealthReport
from .logs import configure_logging
from .runtime import resolve_settings
from .settings import get_settings

log = structlog.get_logger(__name__)

MAX_CONNECTIONS = 32
IDLE_TIMEOUT_S = 5.0
HEALTH_CACHE_S = 2.0
MAX_MIN_WORKERS_DIGITS = 4


def serve() -> None:
    """Serve until the process is stopped (Dramatiq sends SIGTERM to its forks)."""
    configure_logging(get_settings())  # first: starting embedded servers logs at INFO
    settings = resolve_settings(get_settings())
    handler = type("OpsHandler", (OpsHandler,), {"health": CachedHealth(HealthChecker(settings))})
    try:
        server = BoundedServer((settings.metrics_host, settings.metrics_port), handler)
    except OSError as exc:
        # Typically another `dramatiq` command of this host serves it already; that one's
        # /metrics covers this command's workers too (one multiprocess directory per host).
        log.warning("ops_server.not_started", port=settings.metrics_port, error=str(exc))
        return
    log.info("ops_server.listening", host=settings.metrics_host, port=settings.metrics_port)
    server.serve_forever()


class BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS at once."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Wait for a free slot before taking the connection on (the accept loop waits too)."""
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class CachedHealth:
    """One health check at a time; an answer younger than HEALTH_CACHE_S is reused."""

    def __init__(self, checker: HealthChecker) -> None:
        self._checker = checker
        self._lock = threading.Lock()
        self._last: tuple[int, float, HealthReport] | None = None  # min_workers, when, report

    def report(self, min_workers: int) -> HealthReport:
        """The report for `min_workers`, fresh or at most HEALTH_CACHE_S old."""
        with self._lock:
            if self._last is not None:
                asked, at, report = self._last
                if asked == min_workers and time.monotonic() - at < HEALTH_CACHE_S:
                    return report
            report = self._checker.check(min_workers=min_workers)
            self._last = (min_workers, time.monotonic(), report)
            return report


class OpsHandler(BaseHTTPRequestHandler):
    """GET /metrics and GET /health."""

    health: CachedHealth
    timeout = IDLE_TIMEOUT_S  # an idle or slow client's connection is dropped

    def do_GET(self) -> None:
        """Answer one request."""
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._metrics()
        elif url.path in ("/health", "/healthz"):
            wanted = parse_qs(url.query).get("min_workers", ["0"])[0] or "0"
            if not (
                wanted.isascii() and wanted.isdigit() and len(wanted) <= MAX_MIN_WORKERS_DIGITS
            ):
                self._send(400, "text/plain", b"min_workers must be a whole number below 10000\n")
                return
            self._health(int(wanted))
        else:
            self._send(404, "text/plain", b"not found: try /metrics or /health\n")

    def _metrics(self) -> None:
        # Imported here: prometheus_client must see the multiprocess directory first.
        from dramatiq.middleware.prometheus import DB_PATH

        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DB_PATH)
        import prometheus_client as prom
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=DB_PATH)  # type: ignore[no-untyped-call]
        self._send(200, prom.CONTENT_TYPE_LATEST, prom.generate_latest(registry))

    def _health(self, min_workers: int) -> None:
        report = self.health.report(min_workers)
        body = json.dumps(report.to_dict()).encode()
        self._send(200 if report.healthy else 503, "application/json", body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds are not worth a log line each."""
