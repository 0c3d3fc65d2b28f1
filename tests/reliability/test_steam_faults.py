"""Every Steam failure through a real worker: each ends in its documented state, in bounded
time, and stored games are never reduced by a failed or empty fetch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from sync_worker.simulator import ProfileKind, steam_id_for
from tests.conftest import cli, fetch_all
from tests.reliability.conftest import report
from tests.workers import dead_letters, sync_and_collect

WORKER_ENV = {"STEAM_READ_TIMEOUT_S": "2"}  # the module worker gives up on a silent Steam after 2 s
# Every test starts on a fresh broker and leaves no job behind.
pytestmark = pytest.mark.usefixtures("settled_broker")


@dataclass(frozen=True)
class Case:
    """One fault and the state it must end in."""

    name: str
    fault: dict[str, Any] = field(default_factory=dict)
    final: str = "completed"  # the last event's status
    code: str | None = None  # its error code
    library: str = "completed"  # user_libraries.sync_status
    retries: int = 0  # `retrying` events
    deferrals: int = 0  # `queued` events after the first (stepped back for budget)
    dead_lettered: bool = False
    kind: ProfileKind | None = None  # the account turns into this profile
    games: int | None = None  # ... or into one with this many games


CASES = [
    Case("429 without Retry-After", {"kind": "status", "status": 429}, deferrals=1),
    Case(
        "429 with Retry-After: 2", {"kind": "status", "status": 429, "retry_after": 2}, deferrals=1
    ),
    Case("403 that means 429", {"kind": "status", "status": 403}, deferrals=1),
    Case("500, once", {"kind": "status", "status": 500}, retries=1),
    Case("502, once", {"kind": "status", "status": 502}, retries=1),
    Case("503, once", {"kind": "status", "status": 503}, retries=1),
    Case("read timeout, once", {"kind": "delay", "delay_s": 3}, retries=1),
    Case("connection reset, once", {"kind": "reset"}, retries=1),
    Case("truncated JSON, once", {"kind": "truncate"}, retries=1),
    Case(
        "HTML with 200, always",
        {"kind": "html", "count": 50},
        final="failed",
        code="steam_bad_response",
        library="failed",
        retries=3,
        dead_lettered=True,
    ),
    Case(
        "503, always",
        {"kind": "status", "status": 503, "count": 50},
        final="failed",
        code="steam_unavailable",
        library="failed",
        retries=3,
        dead_lettered=True,
    ),
    Case("403 bad key", {"kind": "bad_key"}, "failed", "steam_key_rejected", "failed"),
    Case("private profile", {}, "failed", "private_profile", "private", kind=ProfileKind.PRIVATE),
    Case(
        "private game details",
        {},
        "failed",
        "private_profile",
        "private",
        kind=ProfileKind.PRIVATE_GAME_DETAILS,
    ),
    Case("zero games", {}, games=0),
]


def stored(runtime, library_id: str) -> dict[str, tuple[Any, ...]]:
    rows = fetch_all(
        runtime,
        "SELECT platform_game_id, playtime_minutes, raw_data::text, removed_at FROM library_games"
        " WHERE library_id = %s",
        library_id,
    )
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_steam_fault_ends_in_its_documented_state(runtime, register, sim, worker, case):
    """The fault hits a library that already has games: its end state, and nothing lost."""
    steam_id = steam_id_for(120, seed=121)
    library_id = register(steam_id)
    assert sync_and_collect(library_id)[-1]["status"] == "completed"
    before = stored(runtime, library_id)
    if case.kind is not None or case.games is not None:
        changed = steam_id_for(
            case.games if case.games is not None else 120, case.kind or ProfileKind.PUBLIC, seed=121
        )
        fetch_all(
            runtime,
            "UPDATE user_libraries SET platform_user_id = %s WHERE library_id = %s RETURNING 1",
            changed,
            library_id,
        )
    if case.fault:
        sim.fault(match="GetOwnedGames", **{"count": 1, **case.fault})

    started = time.monotonic()
    events = sync_and_collect(library_id, timeout_s=60)
    elapsed_s = time.monotonic() - started

    final = events[-1]
    statuses = [e["status"] for e in events]
    assert final["status"] == case.final, statuses
    assert (final.get("error") or {}).get("code") == case.code
    assert statuses.count("retrying") == case.retries
    assert statuses[1:].count("queued") == case.deferrals
    [(library_status, library_error)] = fetch_all(
        runtime,
        "SELECT sync_status, sync_error FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert library_status == case.library
    assert (library_error or {}).get("code") == case.code
    assert dead_letters(runtime) == int(case.dead_lettered)
    if case.dead_lettered:
        [raw] = runtime.redis.hvals("dramatiq:high.XQ.msgs")
        assert json.loads(raw)["options"]["error"]["code"] == case.code
    # Whatever happened, every stored game is still there, owned as before.
    after = stored(runtime, library_id)
    if case.final == "completed":
        assert after.keys() == before.keys() and all(r[2] is None for r in after.values())
    else:
        assert after == before
    report(
        f"Steam: {case.name}",
        f"{case.final} {case.code or ''}".strip(),
        f"{final['status']} {(final.get('error') or {}).get('code', '')}".strip(),
        len(after),
        elapsed_s,
    )


def test_an_invalid_stored_steam_id_fails_without_calling_steam(runtime, sim, worker):
    """A library whose id is not a SteamID64 ends invalid_steam_id with zero calls."""
    [(library_id,)] = fetch_all(
        runtime,
        "INSERT INTO user_libraries (platform, platform_user_id) VALUES ('steam', '12345')"
        " RETURNING library_id::text",
    )
    final = sync_and_collect(library_id)[-1]
    assert (final["status"], final["error"]["code"]) == ("failed", "invalid_steam_id")
    assert sim.stats()["total"] == 0
    report(
        "Steam: invalid stored id", "failed invalid_steam_id", "failed invalid_steam_id", 0, None
    )


@pytest.mark.parametrize("retry_after", [None, 3])
def test_inline_sync_waits_out_a_429_longer_than_its_lease(
    runtime, subprocess_env, sim, retry_after
):
    """The CLI's lease outlives a 3 s back-off (TTL 1 s): it waits, keeps the lease, completes."""
    env = {**subprocess_env, "SYNC_LOCK_TTL_S": "1", "STEAM_429_BACKOFF_S": "3"}
    retry_after_header = {"retry_after": retry_after} if retry_after else {}
    sim.fault(match="GetOwnedGames", kind="status", status=429, **retry_after_header)
    started = time.monotonic()
    result = cli(env, "sync", "--steam-id", steam_id_for(300, seed=122), "--json")
    elapsed_s = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert "waiting 3.0 s for steam_webapi budget" in result.stderr
    assert elapsed_s >= 3
    report(
        f"Steam: 429 inline, Retry-After {retry_after}",
        "waits, keeps its lease, completes",
        "completed, exit 0",
        300,
        elapsed_s,
    )


def test_a_worker_waits_out_a_429_in_the_queue_not_in_a_thread(runtime, register, sim, worker):
    """Retry-After 2 in a worker: the job steps back for 2 s or more, then completes."""
    library_id = register(steam_id_for(50, seed=123))
    sim.fault(match="GetOwnedGames", kind="status", status=429, retry_after=2)

    events = sync_and_collect(library_id)

    deferred = next(e for e in events[1:] if e["status"] == "queued")
    assert deferred["retry_in_s"] >= 2 and events[-1]["status"] == "completed"
