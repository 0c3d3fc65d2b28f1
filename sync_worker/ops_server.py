"""The ops HTTP server of a `dramatiq` command: `/metrics` for Prometheus, `/health` for
the platform's checks. Dramatiq runs `serve` in a process of its own (a "fork").

`/metrics` sums what every worker process of the host wrote to Prometheus' multiprocess
directory: Dramatiq's metrics and ours. `/health` is `sync-worker health` as JSON, 200
when healthy and 503 otherwise; `?min_workers=N` requires N live workers per queue.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import structlog

from .health import check_health
from .logs import configure_logging
from .runtime import resolve_settings
from .settings import Settings, get_settings

log = structlog.get_logger(__name__)


def serve() -> None:
    """Serve until the process is stopped (Dramatiq sends SIGTERM to its forks)."""
    configure_logging(get_settings())  # first: starting embedded servers logs at INFO
    settings = resolve_settings(get_settings())
    handler = type("OpsHandler", (OpsHandler,), {"settings": settings})
    try:
        server = ThreadingHTTPServer((settings.metrics_host, settings.metrics_port), handler)
    except OSError as exc:
        # Typically another `dramatiq` command of this host serves it already; that one's
        # /metrics covers this command's workers too (one multiprocess directory per host).
        log.warning("ops_server.not_started", port=settings.metrics_port, error=str(exc))
        return
    log.info("ops_server.listening", host=settings.metrics_host, port=settings.metrics_port)
    server.serve_forever()


class OpsHandler(BaseHTTPRequestHandler):
    """GET /metrics and GET /health."""

    settings: Settings

    def do_GET(self) -> None:
        """Answer one request."""
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._metrics()
        elif url.path in ("/health", "/healthz"):
            wanted = parse_qs(url.query).get("min_workers", ["0"])[0] or "0"
            if not (wanted.isascii() and wanted.isdigit()):
                self._send(400, "text/plain", b"min_workers must be a whole number\n")
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
        report = check_health(self.settings, min_workers=min_workers)
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
