"""Worker heartbeats: how a worker process names itself in `sync:workers` and how often it beats.

The Observability middleware beats (score: the Redis server's time of the last beat);
`health` reads the set to tell which queues have a live worker, and a queued sync's
event says how many live workers can run it (`sending.serving`).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import redis

from . import keys

HEARTBEAT_INTERVAL_S = 5.0
HEARTBEAT_STALE_S = 3 * HEARTBEAT_INTERVAL_S  # two missed beats and a margin


def worker_identity(broker_id: str, queues: list[str], *, can_sync: bool = True) -> str:
    """The `sync:workers` member naming one worker process (`can_sync`: it has a key)."""
    return json.dumps(
        {
            "id": broker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": queues,
            "can_sync": can_sync,
        },
        sort_keys=True,
    )


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """The workers whose last beat is fresh, each with `seen_s_ago` (Redis's clock)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.zrange(keys.WORKERS_KEY, 0, -1, withscores=True)
        server_time, beats = pipe.execute()
    return fresh_workers(server_time, beats)


def fresh_workers(
    server_time: tuple[int, int], beats: list[tuple[bytes, float]]
) -> list[dict[str, Any]]:
    """`live_workers` from an already read `TIME` and `sync:workers`."""
    now_ms = server_time[0] * 1000 + server_time[1] // 1000
    return [
        {**json.loads(member), "seen_s_ago": round((now_ms - score) / 1000, 1)}
        for member, score in beats
        if now_ms - score <= HEARTBEAT_STALE_S * 1000
    ]
