"""The dead letters: messages given up on, kept by Dramatiq's Redis broker for 7 days.

Each holds the error code and sentence of its last attempt (written by Retries, see
`middleware.messages.dead_letter`). Requeueing sends a fresh copy of the message (retry
count reset) and removes the dead letter; a sync goes through `request_sync`, so it is
de-duplicated against a sync of the same library already queued and announced `queued`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
import redis

from . import keys
from .client import request_sync
from .errors import MalformedMessage, SyncWorkerError
from .runtime import Runtime
from .sending import QUEUES, SYNC_ACTOR, Sender


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message."""

    message_id: str
    queue: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: dict[str, Any]
    retries: int
    dead_at: str  # ISO-8601 UTC

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as `sync-worker dead-letters` prints it (arguments shortened)."""
        return {
            "message_id": self.message_id,
            "queue": self.queue,
            "actor": self.actor,
            "args": json.dumps(self.args)[:200],
            "kwargs": json.dumps(self.kwargs)[:200],
            "error": self.error,
            "retries": self.retries,
            "dead_at": self.dead_at,
        }


UNREADABLE = "unreadable_letter"


def _keys(queue: str) -> tuple[str, str]:
    """The dead-letter set of a queue and the hash of its bodies."""
    dead = keys.broker_dead_letters_key(queue)
    return dead, f"{dead}.msgs"


def list_dead_letters(client: redis.Redis, limit: int | None = 100) -> list[DeadLetter]:
    """The most recent dead letters of every queue, newest first (all of them with None)."""
    letters: list[DeadLetter] = []
    last = -1 if limit is None else limit - 1
    for queue in QUEUES:
        zset, messages = _keys(queue)
        entries: list[tuple[bytes, float]] = client.zrevrange(zset, 0, last, withscores=True)  # type: ignore[assignment]
        ids = [redis_id for redis_id, _ in entries]
        bodies: list[bytes | None] = client.hmget(messages, ids) if ids else []  # type: ignore[assignment]
        for (redis_id, dead_ms), body in zip(entries, bodies, strict=True):
            if body is not None:
                letters.append(_decode(queue, redis_id.decode(), body, dead_ms))
    letters.sort(key=lambda letter: letter.dead_at, reverse=True)
    return letters if limit is None else letters[:limit]


def find_dead_letter(client: redis.Redis, message_id: str) -> DeadLetter | None:
    """The dead letter with that id, however old, or None."""
    for queue in QUEUES:
        zset, messages = _keys(queue)
        with client.pipeline(transaction=False) as pipe:
            pipe.zscore(zset, message_id)
            pipe.hget(messages, message_id)
            dead_ms, body = pipe.execute()
        if dead_ms is not None and body is not None:
            return _decode(queue, message_id, body, dead_ms)
    return None


def _decode(queue: str, redis_id: str, body: bytes, dead_ms: float) -> DeadLetter:
    """Whatever the body holds: a letter that is not a Dramatiq message is listed as such,
    never a reason to stop listing the others."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    options = data.get("options")
    if not isinstance(options, dict):
        options = {}
    args, kwargs = data.get("args"), data.get("kwargs")
    error = options.get("error")
    retries = options.get("retries")
    readable = isinstance(data.get("actor_name"), str)
    if not readable:
        error = {"code": UNREADABLE, "message": "The letter is not a Dramatiq message."}
    elif not isinstance(error, dict):
        error = {"code": "unknown", "message": "No error was recorded."}
    return DeadLetter(
        message_id=redis_id,
        queue=queue,
        actor=str(data.get("actor_name", "?")),
        args=list(args) if isinstance(args, list) else [],
        kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
        error=error,
        retries=retries if isinstance(retries, int) else 0,
        dead_at=datetime.fromtimestamp(dead_ms / 1000, UTC).isoformat(),
    )


def requeue(
    runtime: Runtime, letters: list[DeadLetter]
) -> list[tuple[DeadLetter, SyncWorkerError | None]]:
    """Send each letter's message again, then remove the letter.

    Returns each letter with None, or the error that kept it dead (a sync of a library
    that no longer exists, arguments that cannot make a sync message): those stay listed.
    """
    results: list[tuple[DeadLetter, SyncWorkerError | None]] = []
    sender = Sender(runtime)
    for letter in letters:
        try:
            if letter.error["code"] == UNREADABLE:
                raise MalformedMessage("it is not a Dramatiq message.")
            if letter.actor == SYNC_ACTOR:
                library_id = letter.args[0] if letter.args else letter.kwargs.get("library_id")
                if not isinstance(library_id, str):
                    raise MalformedMessage("its library id is not a string.")
                request_sync(library_id, sync_type=str(letter.kwargs.get("sync_type", "manual")))
            else:
                sender.send(
                    dramatiq.Message(
                        queue_name=letter.queue,
                        actor_name=letter.actor,
                        args=tuple(letter.args),
                        kwargs=letter.kwargs,
                        options={},
                    )
                )
        except SyncWorkerError as exc:
            results.append((letter, exc))
            continue
        zset, messages = _keys(letter.queue)
        runtime.redis.zrem(zset, letter.message_id)
        runtime.redis.hdel(messages, letter.message_id)
        results.append((letter, None))
    return results
