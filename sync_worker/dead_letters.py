"""The dead letters: messages given up on, kept by Dramatiq's Redis broker for 7 days.

Each holds the error code and sentence of its last attempt (written by Retries, see
`middleware.messages.dead_letter`). A letter is named by its message id (the one in the
logs and the one `request_sync` returned); the broker's own key for it (`redis_id`)
works too. Requeueing sends a fresh copy of the message (retry count reset) and removes
the dead letter; a sync goes through `request_sync`, so it is de-duplicated against a
sync of the same library already queued and announced `queued`. Discarding removes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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

    message_id: str  # Dramatiq's, as logged (the broker's key for an unreadable letter)
    redis_id: str  # the broker's key for it
    queue: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: dict[str, Any]
    retries: int
    dead_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as `sync-worker dead-letters` prints it."""
        return {
            "message_id": self.message_id,
            "redis_id": self.redis_id,
            "queue": self.queue,
            "actor": self.actor,
            "args": self.args,
            "kwargs": self.kwargs,
            "error": self.error,
            "retries": self.retries,
            "dead_at": self.dead_at.isoformat(),
        }

    def matches(
        self, *, code: str | None = None, actor: str | None = None, before: datetime | None = None
    ) -> bool:
        """Whether the letter has that error code, that actor, and died before `before`."""
        return (
            (code is None or self.error.get("code") == code)
            and (actor is None or self.actor == actor)
            and (before is None or self.dead_at < before)
        )


UNREADABLE = "unreadable_letter"
_PAGE = 500  # letters whose bodies are read in one round trip


def _keys(queue: str) -> tuple[str, str]:
    """The dead-letter set of a queue and the hash of its bodies."""
    dead = keys.broker_dead_letters_key(queue)
    return dead, f"{dead}.msgs"


def list_dead_letters(
    client: redis.Redis,
    limit: int | None = 100,
    *,
    code: str | None = None,
    actor: str | None = None,
    before: datetime | None = None,
) -> list[DeadLetter]:
    """The most recent dead letters of every queue matching the filters (see
    `DeadLetter.matches`), newest first; all of them with `limit` None."""
    letters = [
        letter
        for queue in QUEUES
        for letter in _letters_of(client, queue)
        if letter.matches(code=code, actor=actor, before=before)
    ]
    letters.sort(key=lambda letter: letter.dead_at, reverse=True)
    return letters if limit is None else letters[:limit]


def latest_dead_letters(client: redis.Redis, limit: int) -> list[DeadLetter]:
    """The `limit` newest dead letters of all queues, newest first, reading no more than
    that many of each queue (the dashboard's list: cheap however many letters there are)."""
    with client.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            pipe.zrevrange(_keys(queue)[0], 0, limit - 1, withscores=True)
        entries: list[list[tuple[bytes, float]]] = pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for queue, page in zip(QUEUES, entries, strict=True):
            pipe.hmget(_keys(queue)[1], [i for i, _ in page] or ["-"])
        bodies: list[list[bytes | None]] = pipe.execute()
    letters = [
        _decode(queue, redis_id.decode(), body, dead_ms)
        for queue, page, found in zip(QUEUES, entries, bodies, strict=True)
        for (redis_id, dead_ms), body in zip(page, found[: len(page)], strict=True)
        if body is not None
    ]
    letters.sort(key=lambda letter: letter.dead_at, reverse=True)
    return letters[:limit]


def _letters_of(client: redis.Redis, queue: str) -> Iterator[DeadLetter]:
    """Every dead letter of one queue, read a page at a time."""
    zset, messages = _keys(queue)
    entries: list[tuple[bytes, float]] = client.zrange(zset, 0, -1, withscores=True)  # type: ignore[assignment]
    for start in range(0, len(entries), _PAGE):
        page = entries[start : start + _PAGE]
        bodies: list[bytes | None] = client.hmget(messages, [i for i, _ in page])  # type: ignore[assignment]
        for (redis_id, dead_ms), body in zip(page, bodies, strict=True):
            if body is not None:
                yield _decode(queue, redis_id.decode(), body, dead_ms)


def find_dead_letter(client: redis.Redis, letter_id: str) -> DeadLetter | None:
    """The dead letter with that message id (or broker key), however old, or None."""
    for queue in QUEUES:
        zset, messages = _keys(queue)
        with client.pipeline(transaction=False) as pipe:
            pipe.zscore(zset, letter_id)
            pipe.hget(messages, letter_id)
            dead_ms, body = pipe.execute()
        if dead_ms is not None and body is not None:
            return _decode(queue, letter_id, body, dead_ms)
    for queue in QUEUES:
        for letter in _letters_of(client, queue):
            if letter.message_id == letter_id:
                return letter
    return None


def discard(client: redis.Redis, letters: list[DeadLetter]) -> None:
    """Remove the letters for good, in one round trip however many."""
    with client.pipeline(transaction=True) as pipe:
        for letter in letters:
            zset, messages = _keys(letter.queue)
            pipe.zrem(zset, letter.redis_id)
            pipe.hdel(messages, letter.redis_id)
        pipe.execute()


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
    message_id = data.get("message_id")
    if not readable:
        error = {"code": UNREADABLE, "message": "The letter is not a Dramatiq message."}
    elif not isinstance(error, dict):
        error = {"code": "unknown", "message": "No error was recorded."}
    return DeadLetter(
        message_id=message_id if isinstance(message_id, str) and message_id else redis_id,
        redis_id=redis_id,
        queue=queue,
        actor=str(data.get("actor_name", "?")),
        args=list(args) if isinstance(args, list) else [],
        kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
        error=error,
        retries=retries if isinstance(retries, int) else 0,
        dead_at=datetime.fromtimestamp(dead_ms / 1000, UTC),
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
        discard(runtime.redis, [letter])
        results.append((letter, None))
    return results
