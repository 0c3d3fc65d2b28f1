"""Differential sync leaves exactly the rows and counts that writing every game leaves.

One simulated library goes through random sequences of changes (playtimes, additions,
removals, renames, nothing at all), some syncs killed after a random batch and resumed.
After each step the library is synced twice: differentially into the test database, and
by writing everything (SYNC_DIFFERENTIAL=false) into a second database. Both must hold
the same rows, field for field, and report the same counts.
"""

from __future__ import annotations

import contextlib
import math
import random
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from structlog.testing import capture_logs

from sync_worker.platforms.owned_library import SLICE_BITS
from sync_worker.platforms.steam import SteamClient
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import digests, libraries
from sync_worker.store.migrations import migrate
from sync_worker.sync.engine import SyncEngine
from sync_worker.sync.outcome import SyncOutcome
from tests.conftest import fetch_all

GAMES = 1_500
STEPS = 12


class Crash(BaseException):
    """Stands for the worker dying after a batch: nothing handles it."""


@pytest.fixture(scope="module")
def reference(runtime: Runtime) -> Iterator[Runtime]:
    """A runtime on a second database, writing every game (the reference)."""
    url = str(runtime.settings.database_url)
    name = f"{conninfo_to_dict(url)['dbname']}_reference"
    with (
        psycopg.connect(url, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.DuplicateDatabase),
    ):
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = runtime.settings.model_copy(
        update={"database_url": make_conninfo(url, dbname=name), "sync_differential": False}
    )
    ref = Runtime(settings)
    with ref.pool.connection() as conn:
        migrate(conn)
    yield ref
    ref.close()


def engine(rt: Runtime, crash_after: int | None = None) -> SyncEngine:
    def after_batch(_library_id: str, batch: int) -> None:
        if batch == crash_after:
            raise Crash

    s = rt.settings
    return SyncEngine(s, rt.redis, rt.pool, lambda: SteamClient(s), after_batch=after_batch)


def stored(rt: Runtime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The one library's rows and the catalog, without ids and timestamps of writing."""
    owned = fetch_all(
        rt,
        "SELECT platform_game_id, playtime_minutes, playtime_2weeks_minutes, last_played_at,"
        " raw_data, removed_at IS NULL FROM library_games ORDER BY platform_game_id",
    )
    catalog = fetch_all(
        rt, "SELECT platform_game_id, title, icon_url FROM games ORDER BY platform_game_id"
    )
    return owned, catalog


def stored_digests(rt: Runtime, library_id: str) -> digests.StoredDigests:
    with rt.pool.connection() as conn:
        return digests.stored_digests(conn, library_id)


def owned_slices(rt: Runtime) -> set[int]:
    """The slices holding the library's owned games: exactly those with a digest."""
    ids = fetch_all(rt, "SELECT platform_game_id FROM library_games WHERE removed_at IS NULL")
    return {int(row[0]) >> SLICE_BITS for row in ids}


def run_batches(rt: Runtime, run_id: str) -> int:
    [(batches,)] = fetch_all(rt, "SELECT batches FROM sync_runs WHERE run_id = %s", run_id)
    return int(batches)


def random_change(rng: random.Random, owned: list[int]) -> dict[str, Any]:
    """A change a real library goes through between two syncs (sometimes none)."""
    picks = lambda n: rng.sample(owned, min(n, len(owned)))  # noqa: E731
    kind = rng.choice(["none", "playtime", "playtime", "add", "remove", "rename", "mixed"])
    change: dict[str, Any] = {}
    if kind in ("playtime", "mixed"):
        change["bump_playtime"] = {str(a): rng.randint(1, 600) for a in picks(rng.randint(1, 30))}
    if kind in ("add", "mixed"):
        taken = set(owned)
        fresh = {10 * rng.randint(1, 200_000) for _ in range(rng.randint(1, 20))} - taken
        change["add"] = sorted(fresh)
    if kind in ("remove", "mixed"):
        change["remove"] = picks(rng.randint(1, 20))
    if kind in ("rename", "mixed"):
        change["rename"] = {str(a): f"Renamed {rng.random():.6f}" for a in picks(3)}
    return change


def sync_differentially(rt: Runtime, library_id: str, crash_after: int | None) -> SyncOutcome:
    """Sync, possibly killed after batch `crash_after`; the message comes back (same id) and
    resumes the run, or, if the batch that died was the last, finds the run completed."""
    message_id = f"test-{uuid.uuid4()}"
    try:
        return engine(rt, crash_after).sync(library_id, owner=message_id)
    except Crash:
        rt.redis.flushdb()  # the dead worker's lease: long gone by its redelivery
        return engine(rt).sync(library_id, owner=message_id)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_differential_sync_equals_writing_everything(runtime, reference, sim, seed):
    """Random histories: same rows, same catalog, same counts; unchanged slices skipped."""
    rng = random.Random(seed)
    steam_id = steam_id_for(GAMES, seed=40 + seed)
    with reference.pool.connection() as conn:
        conn.execute("TRUNCATE user_libraries, games, library_games, sync_runs CASCADE")
        ref_id = libraries.register_library(conn, "steam", steam_id)
    with runtime.pool.connection() as conn:
        diff_id = libraries.register_library(conn, "steam", steam_id)

    for step in range(STEPS):
        change = random_change(rng, sim.owned_app_ids(steam_id)) if step else {}
        if change:
            sim.change_library(steam_id, **change)
        crash_after = rng.choice([None, None, 1, 2, 4])
        diff = sync_differentially(runtime, diff_id, crash_after)
        ref = engine(reference).sync(ref_id)

        context = f"seed {seed}, step {step}, change {change}, crash after {crash_after}"
        assert diff.status == ref.status == "completed", context
        assert stored(runtime) == stored(reference), context
        kept = stored_digests(runtime, diff_id)
        assert set(kept.slices) == owned_slices(runtime), context
        assert kept.answer is not None, context  # every slice as this answer has it
        counts = ("total_games", "new_games", "updated_games", "removed_games")
        assert [getattr(diff, c) for c in counts] == [getattr(ref, c) for c in counts], context
        # The reference wrote every game; the differential run only changed slices.
        assert run_batches(reference, ref.run_id) == math.ceil(ref.total_games / 100), context
        if step and not change:
            assert run_batches(runtime, diff.run_id) == 0, context
        else:
            assert run_batches(runtime, diff.run_id) <= run_batches(reference, ref.run_id)


def test_an_unchanged_answer_is_not_parsed_and_a_changed_one_is(
    runtime, register, make_engine, sim
):
    """The whole answer's digest skips an unchanged library; any change reads it again."""
    steam_id = steam_id_for(600, seed=61)
    library_id = register(steam_id)
    make_engine().sync(library_id)

    with capture_logs() as same:
        unchanged = make_engine().sync(library_id)
    sim.change_library(steam_id, bump_playtime={str(sim.owned_app_ids(steam_id)[5]): 9})
    with capture_logs() as changed:
        bumped = make_engine().sync(library_id)

    def completed(logs: list[dict[str, Any]]) -> dict[str, Any]:
        return next(e for e in logs if e["event"] == "sync.completed")

    assert completed(same)["same_answer"] is True
    assert (unchanged.total_games, unchanged.new_games, unchanged.updated_games) == (600, 0, 0)
    assert completed(changed)["same_answer"] is False
    assert (bumped.updated_games, run_batches(runtime, bumped.run_id)) == (1, 1)


def test_a_resumed_run_keeps_no_answer_digest_for_rows_an_earlier_answer_wrote(
    runtime, register, make_engine, sim
):
    """Attempt 1 writes a batch and dies; Steam changes a game in that batch before attempt 2,
    which resumes past it. The rows there are attempt 1's, so the same answer next time must
    not be taken as already stored: the next sync writes the change."""
    steam_id = steam_id_for(300, seed=62)
    library_id = register(steam_id)
    settings = runtime.settings.model_copy(update={"sync_batch_size": 100})

    def crash_after_first(_library_id: str, batch: int) -> None:
        if batch == 1:
            raise Crash

    with pytest.raises(Crash):
        make_engine(after_batch=crash_after_first, settings=settings).sync(library_id)
    runtime.redis.flushdb()  # the dead worker's lease
    [(resume_after,)] = fetch_all(
        runtime, "SELECT resume_after FROM sync_runs WHERE status = 'running'"
    )
    early = min(a for a in sim.owned_app_ids(steam_id) if a <= resume_after)
    sim.change_library(steam_id, bump_playtime={str(early): 45})

    make_engine(settings=settings).sync(library_id)  # resumes after the checkpoint
    assert stored_digests(runtime, library_id).answer is None
    again = make_engine(settings=settings).sync(library_id)

    [(playtime,)] = fetch_all(
        runtime,
        "SELECT playtime_minutes FROM library_games WHERE platform_game_id = %s",
        str(early),
    )
    expected = next(g for g in sim.owned_games(steam_id) if g["appid"] == early)
    assert (again.updated_games, playtime) == (1, expected["playtime_forever"])
    assert stored_digests(runtime, library_id).answer is not None
