"""Dead letters as an operator meets them: every letter, readable or not, and all of them
requeued when asked, however many there are."""

from __future__ import annotations

import json
import time
import uuid

import dramatiq

from sync_worker import keys
from tests.conftest import cli

LETTERS = 151  # more than a listing page (100)
STEAM_DOWN = {"code": "steam_unavailable", "message": "Steam is down."}


def bury(runtime, queue: str, body: bytes, dead_ms: int) -> str:
    """Store a dead letter as Dramatiq's Redis broker does: id in a sorted set, body in a hash."""
    redis_id = str(uuid.uuid4())
    dead = keys.broker_dead_letters_key(queue)
    runtime.redis.zadd(dead, {redis_id: dead_ms})
    runtime.redis.hset(f"{dead}.msgs", redis_id, body)
    return redis_id


def enrich_letter(number: int) -> bytes:
    message = dramatiq.Message(
        "low",
        "enrich_games",
        ([str(number)],),
        {},
        {"retries": 3, "error": {"code": "steam_unavailable", "message": "Steam is down."}},
    )
    return message.encode()


def test_a_malformed_letter_is_listed_and_every_letter_can_be_requeued(runtime, subprocess_env):
    base_ms = 1_700_000_000_000
    oldest = bury(runtime, "low", enrich_letter(0), base_ms)
    for number in range(1, LETTERS):
        bury(runtime, "low", enrich_letter(number), base_ms + number * 1000)
    broken = {
        "not json": b"\xff{not json",
        "a list": b"[1, 2]",
        "odd fields": json.dumps(
            {"actor_name": "enrich_games", "args": "x", "kwargs": 3, "options": {"retries": "x"}}
        ).encode(),
    }
    broken_ids = {
        bury(runtime, "high", body, base_ms + 500_000 + i) for i, body in enumerate(broken.values())
    }

    listed = cli(subprocess_env, "dead-letters")
    assert listed.returncode == 0, listed.stderr
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(letters) == 100  # one page, newest first: the three broken ones lead
    by_id = {letter["redis_id"]: letter for letter in letters}
    assert {by_id[i]["error"]["code"] for i in broken_ids} == {"unreadable_letter", "unknown"}

    one = cli(subprocess_env, "dead-letters", "--requeue", oldest)  # not on the first page
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) | {"message_id": None} == {
        "message_id": None,
        "redis_id": oldest,
        "actor": "enrich_games",
        "requeued": True,
    }

    every = cli(subprocess_env, "dead-letters", "--requeue-all")
    outcomes = [json.loads(line) for line in every.stdout.splitlines()]
    requeued = [o for o in outcomes if o["requeued"]]
    assert len(requeued) == LETTERS - 1 + 1  # the other enrich letters, and the odd-fields one
    assert every.returncode == 1  # the two unreadable ones stay, with their reason
    assert runtime.redis.llen(keys.broker_queue_key("low")) == LETTERS
    left = [json.loads(line) for line in cli(subprocess_env, "dead-letters").stdout.splitlines()]
    assert sorted(letter["error"]["code"] for letter in left) == ["unreadable_letter"] * 2


def test_letters_are_named_by_the_message_id_people_see_and_can_be_filtered(
    runtime, subprocess_env
):
    """The id in the logs and in request_sync's answer lists, requeues and discards a letter;
    filters by code, actor and age pick what --purge removes; an empty list says so."""
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    down = dramatiq.Message("low", "enrich_games", (["10", "20"],), {}, {"error": STEAM_DOWN})
    gone = dramatiq.Message(
        "default", "sync_library", ("lib",), {}, {"error": {"code": "unknown_library"}}
    )
    old_down = dramatiq.Message("low", "enrich_games", (["30"],), {}, {"error": STEAM_DOWN})
    bury(runtime, "low", down.encode(), now_ms - 1000)
    bury(runtime, "default", gone.encode(), now_ms - 2000)
    bury(runtime, "low", old_down.encode(), now_ms - 8 * day_ms)

    listed = [json.loads(line) for line in cli(subprocess_env, "dead-letters").stdout.splitlines()]
    assert [letter["message_id"] for letter in listed] == [
        down.message_id,
        gone.message_id,
        old_down.message_id,
    ]
    assert listed[0]["args"] == [["10", "20"]]  # JSON, not a string of JSON
    only = cli(
        subprocess_env, "dead-letters", "--code", "unknown_library", "--actor", "sync_library"
    )
    assert [json.loads(line)["message_id"] for line in only.stdout.splitlines()] == [
        gone.message_id
    ]

    purged = cli(
        subprocess_env,
        "dead-letters",
        "--purge",
        "--code",
        "steam_unavailable",
        "--older-than",
        "7d",
    )
    assert [json.loads(line)["message_id"] for line in purged.stdout.splitlines()] == [
        old_down.message_id
    ]
    requeued = cli(subprocess_env, "dead-letters", "--requeue", down.message_id)
    assert json.loads(requeued.stdout)["requeued"] is True, requeued.stderr
    assert runtime.redis.llen(keys.broker_queue_key("low")) == 1
    discarded = cli(subprocess_env, "dead-letters", "--discard", gone.message_id)
    assert json.loads(discarded.stdout)["discarded"] is True

    empty = cli(subprocess_env, "dead-letters")
    assert (empty.returncode, empty.stdout, empty.stderr.strip()) == (0, "", "no dead letters")
    bad = cli(subprocess_env, "dead-letters", "--purge", "--older-than", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
