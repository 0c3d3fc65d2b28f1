"""Worker heartbeats: how a worker process names itself in `sync:workers` and how often it beats.

The Observability middleware beats (score: the Redis server's time of the last beat);
`health` reads the set to tell which queues have a live worker.
"""

from __future__ import annotations

import json
import os
import socket

HEARTBEAT_INTERVAL_S = 5.0
HEARTBEAT_STALE_S = 3 * HEARTBEAT_INTERVAL_S  # two missed beats and a margin


def worker_identity(broker_id: str, queues: list[str]) -> str:
    """The `sync:workers` member naming one worker process."""
    return json.dumps(
        {"id": broker_id, "host": socket.gethostname(), "pid": os.getpid(), "queues": queues},
        sort_keys=True,
    )
