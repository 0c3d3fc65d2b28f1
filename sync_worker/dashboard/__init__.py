"""The operator's dashboard: live syncs, queues, budget, schedule, history and dead
letters on one page, with every number also as JSON (docs/dashboard.md).

`sync-worker dashboard` serves it; it needs the `[dashboard]` extra (Starlette, uvicorn,
Jinja2), which the Docker image and requirements.lock include.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from ..errors import ConfigurationError
from ..settings import Settings

GRACEFUL_STOP_S = 3  # live streams never end by themselves: close them after this


def check_access(settings: Settings, host: str) -> None:
    """Refuse to serve without DASHBOARD_TOKEN in production or beyond this machine."""
    if settings.dashboard_token is None and (settings.is_production or not _loopback(host)):
        where = "in production" if settings.is_production else f"on {host} (not loopback)"
        raise ConfigurationError(f"DASHBOARD_TOKEN must be set to serve the dashboard {where}.")
    if settings.dashboard_readonly_token is not None and settings.dashboard_token is None:
        raise ConfigurationError("DASHBOARD_READONLY_TOKEN is set without DASHBOARD_TOKEN.")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (a clear error when the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigurationError(
            f"port {port} is already in use; choose another with --port."
        ) from None
    return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
