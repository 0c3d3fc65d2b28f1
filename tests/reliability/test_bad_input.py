"""Bad input through a real worker: a clear error, a dead letter that says why, the worker
goes on, and nothing stored is corrupted."""

from __future__ import annotations

import json
import signal
import uuid

import dramatiq
import pytest

from sync_worker import client
from sync_worker.app import get_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, library_status, wait_for
from tests.reliability.conftest import report
from tests.workers import WorkerGroup, sync_and_collect

# Every test starts on a fresh broker and leaves no job behind.
pytestmark = pytest.mark.usefixtures("settled_broker")


BAD_MESSAGES = [
    ("an int as library id", (42,), {}, "malformed_message"),
    ("a 1 MB string as library id", ("x" * 1_000_000,), {}, "malformed_message"),
    ("a random uuid", (str(uuid.UUID(int=7)),), {}, "unknown_library"),
    ("an unknown keyword", (str(uuid.UUID(int=8)),), {"colour": "blue"}, "malformed_message"),
    ("no arguments", (), {}, "malformed_message"),
    (
        "an unknown sync_type",
        (str(uuid.UUID(int=9)),),
        {"sync_type": "weekly"},
        "malformed_message",
    ),
]


def test_malformed_messages_are_dead_lettered_with_their_reason_and_the_worker_goes_on(
    runtime, register, worker
):
    """Each bad message ends in the dead-letter set holding its code; a good one still syncs."""
    broker = get_broker()
    for _, args, kwargs, _ in BAD_MESSAGES:
        broker.enqueue(
            dramatiq.Message(
                queue_name="high", actor_name="sync_library", args=args, kwargs=kwargs, options={}
            )
        )
    good = register(steam_id_for(60, seed=141))
    client.request_sync(good)

    wait_for(lambda: library_status(runtime, good) == "completed", 30, "the good message")
    wait_for(
        lambda: runtime.redis.zcard("dramatiq:high.XQ") == len(BAD_MESSAGES), 30, "dead letters"
    )
    letters = [json.loads(raw) for raw in runtime.redis.hvals("dramatiq:high.XQ.msgs")]
    codes = sorted(letter["options"]["error"]["code"] for letter in letters)
    assert codes == sorted(code for *_, code in BAD_MESSAGES)
    assert all(letter["options"]["error"]["message"] for letter in letters)
    gave_up = worker.events("sync.gave_up")
    assert sorted(e["error_code"] for e in gave_up) == codes
    assert max(len(line) for line in worker.text().splitlines()) < 10_000  # no 1 MB log line
    assert fetch_all(runtime, "SELECT count(*) FROM user_libraries") == [(1,)]
    for name, _, _, code in BAD_MESSAGES:
        report(f"message: {name}", f"dead letter {code}", f"dead letter {code}", 0, None)


HOSTILE_NAMES = {
    "nul": "Before\x00After",
    "unicode": "Ünïcödé 🎮 ドラゴン עברית e\u0301",
    "very long": "L" * 100_000,
    "sql": "Robert'); DROP TABLE games; --",
    "html": "<script>alert('x')</script> & \"quotes\"",
    "control": "tab\there\nnewline\\backslash",
    "empty": "",
}


def test_hostile_game_names_are_stored_exactly_and_resync_cleanly(runtime, register, sim, worker):
    """Names with NUL, emoji, 100k characters, SQL and HTML: stored as sent (NUL removed)."""
    steam_id = steam_id_for(40, seed=142)
    library_id = register(steam_id)
    app_ids = sim.owned_app_ids(steam_id)[: len(HOSTILE_NAMES)]
    sim.change_library(
        steam_id,
        rename={str(a): name for a, name in zip(app_ids, HOSTILE_NAMES.values(), strict=True)},
    )

    assert sync_and_collect(library_id)[-1]["status"] == "completed"
    again = sync_and_collect(library_id)[-1]

    titles = dict(
        fetch_all(
            runtime,
            "SELECT platform_game_id, title FROM games WHERE platform_game_id = ANY(%s)",
            [str(a) for a in app_ids],
        )
    )
    expected = {
        str(a): (name.replace("\x00", "") or None)
        for a, name in zip(app_ids, HOSTILE_NAMES.values(), strict=True)
    }
    assert titles == expected
    assert again["status"] == "completed" and "0 new, 0 updated" in again["message"]
    assert fetch_all(runtime, "SELECT count(*) FROM games") == [(40,)]  # the SQL did not run
    report(
        "hostile game names (7 kinds)", "stored exactly, NUL removed", "stored exactly", 40, None
    )


def test_an_oversized_steam_answer_fails_clearly_and_keeps_stored_games(
    runtime, register, subprocess_env, make_engine, tmp_path, worker
):
    """Above STEAM_MAX_RESPONSE_MB: steam_response_too_large, stored games kept, worker goes on."""
    library_id = register(steam_id_for(1_000, seed=143))
    small_id = register(steam_id_for(20, seed=144))
    make_engine().sync(library_id)  # stored before the limit is lowered
    env = {**subprocess_env, "STEAM_MAX_RESPONSE_MB": "0.05"}
    capped = WorkerGroup(env, tmp_path / "capped.log").wait_ready()
    worker.signal(signal.SIGSTOP)  # the module's uncapped worker must not take the syncs
    try:
        final = sync_and_collect(library_id)[-1]
        small = sync_and_collect(small_id)[-1]
    finally:
        worker.signal(signal.SIGCONT)
        capped.stop()

    assert (final["status"], final["error"]["code"]) == ("failed", "steam_response_too_large")
    assert "larger than 0.05 MB (STEAM_MAX_RESPONSE_MB)" in final["error"]["message"]
    # Too large stays too large: asked again in a day, like a private profile, not hourly.
    [(next_sync_s, failures)] = fetch_all(
        runtime,
        "SELECT extract(epoch FROM next_sync_at - last_sync_at), account_failures"
        " FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert (round(next_sync_s), failures) == (86_400, 1)
    assert fetch_all(
        runtime,
        "SELECT count(*) FROM library_games WHERE library_id = %s AND removed_at IS NULL",
        library_id,
    ) == [(1_000,)]
    assert small["status"] == "completed"  # the worker went on with the next message
    report(
        "oversized Steam answer (cap 0.05 MB)",
        "failed steam_response_too_large",
        f"{final['status']} {final['error']['code']}",
        1_000,
        None,
    )
