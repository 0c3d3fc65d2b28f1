"""GOG libraries synced by the engine on real PostgreSQL and Redis against the simulator:
exact first syncs, 3-call re-syncs, playtime, purchases and removals, shifting pages,
resuming at a page, relink_required, private stats."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import pytest
import requests

from sync_worker import keys
from sync_worker.errors import GogUnauthorized, RateLimitDeferred
from sync_worker.ratelimit import RateLimiter
from sync_worker.simulator.gog import (
    GogKind,
    gog_user_id_for,
    is_delisted,
    is_dlc,
    is_movie,
    parse_account,
    product,
)
from tests.conftest import fetch_all, link_gog


class Crash(BaseException):
    """A worker dying right after a commit (not an error the engine handles)."""


def gog_admin(simulator, path: str, body: dict[str, Any] | None = None) -> None:
    requests.post(f"{simulator.url}/_sim/gog/{path}", json=body or {}, timeout=5).raise_for_status()


def owned_products(simulator, user_id: str) -> list[int]:
    from sync_worker.simulator.gog import parse_account

    account = parse_account(user_id)
    assert account is not None
    return simulator.gog.owned(account)


def rows(runtime, library_id: str) -> dict[str, tuple[Any, ...]]:
    """{product id: (title, playtime, last played, removed?)} as stored."""
    return {
        game_id: rest
        for game_id, *rest in fetch_all(
            runtime,
            "SELECT lg.platform_game_id, g.title, lg.playtime_minutes, lg.last_played_at,"
            " lg.removed_at IS NOT NULL FROM library_games lg JOIN games g USING (platform,"
            " platform_game_id) WHERE lg.library_id = %s",
            library_id,
        )
    }


def gog_calls(simulator) -> int:
    calls = requests.get(f"{simulator.url}/_sim/stats", timeout=5).json()["calls"]
    return sum(n for endpoint, n in calls.items() if endpoint.startswith("gog_"))


def products_calls(simulator) -> int:
    return int(
        requests.get(f"{simulator.url}/_sim/stats", timeout=5)
        .json()["calls"]
        .get("gog_products", 0)
    )


@pytest.fixture
def gog_sim(simulator):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    return simulator


def test_a_first_sync_stores_exactly_what_the_account_owns(runtime, settings, gog_sim, make_engine):
    user_id = gog_user_id_for(450, seed=61)
    library_id = link_gog(settings, user_id)
    calls_before = gog_calls(gog_sim)
    outcome = make_engine().sync(library_id)

    owned = owned_products(gog_sim, user_id)
    games = [p for p in owned if not is_movie(p)]
    stored = rows(runtime, library_id)
    assert outcome.status == "completed" and outcome.total_games == len(games)
    assert outcome.new_games == len(games) and set(stored) == {str(p) for p in games}
    for p in games:  # titles from the pages; a delisted product is owned, its title unknown
        title = stored[str(p)][0]
        assert title == (None if is_delisted(p) else product(p)["title"]), p
    types = dict(
        fetch_all(runtime, "SELECT platform_game_id, game_type FROM games WHERE platform = 'gog'")
    )
    for p in games:  # DLC stored as owned, with its type; a delisted product's is unknown
        expected = None if is_delisted(p) else "dlc" if is_dlc(p) else "game"
        assert types[str(p)] == expected, p
    assert "dlc" in types.values()
    played = [r for r in stored.values() if r[1] > 0]
    assert played and all(r[2] is not None for r in played)
    [(status, total)] = fetch_all(
        runtime,
        "SELECT sync_status, total_games FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert (status, total) == ("completed", len(games))
    # Every call the run made is on its record (the token is fresh from linking: no grant).
    assert outcome.api_calls == gog_calls(gog_sim) - calls_before


def test_an_unchanged_library_costs_3_calls_and_writes_nothing(
    runtime, settings, gog_sim, make_engine
):
    library_id = link_gog(settings, gog_user_id_for(300, seed=62))
    make_engine().sync(library_id)
    before = rows(runtime, library_id)
    again = make_engine().sync(library_id)
    assert (again.status, again.api_calls, again.new_games, again.updated_games) == (
        "completed",
        3,
        0,
        0,
    )
    assert rows(runtime, library_id) == before


def test_new_play_sessions_update_only_their_games(runtime, settings, gog_sim, make_engine):
    user_id = gog_user_id_for(300, seed=63)
    library_id = link_gog(settings, user_id)
    make_engine().sync(library_id)
    before = rows(runtime, library_id)
    game = next(
        p for p in owned_products(gog_sim, user_id) if not is_movie(p) and before[str(p)][1] > 0
    )
    gog_admin(gog_sim, f"libraries/{user_id}", {"bump_playtime": {str(game): 45}})
    again = make_engine().sync(library_id)
    after = rows(runtime, library_id)
    assert (again.updated_games, again.new_games, again.api_calls) == (1, 0, 3)
    assert after[str(game)][1] == before[str(game)][1] + 45
    assert after[str(game)][2] > before[str(game)][2]
    assert {k: v for k, v in after.items() if k != str(game)} == {
        k: v for k, v in before.items() if k != str(game)
    }


def test_purchases_and_removals(runtime, settings, gog_sim, make_engine):
    user_id = gog_user_id_for(200, seed=64)
    library_id = link_gog(settings, user_id)
    make_engine().sync(library_id)
    owned = owned_products(gog_sim, user_id)
    gone = next(p for p in owned if not is_movie(p) and not is_delisted(p))
    bought = next(
        p
        for p in owned_products(gog_sim, gog_user_id_for(3_000, seed=65))
        if p not in owned and not is_movie(p) and not is_delisted(p)
    )
    gog_admin(gog_sim, f"libraries/{user_id}", {"remove": [gone], "add": [bought]})
    again = make_engine().sync(library_id)
    stored = rows(runtime, library_id)
    assert (again.new_games, again.removed_games) == (1, 1)
    assert stored[str(bought)][0] == product(bought)["title"] and stored[str(gone)][3] is True


def test_a_purchase_between_two_pages_loses_and_doubles_nothing(
    runtime, settings, gog_sim, make_engine
):
    user_id = gog_user_id_for(350, seed=66)
    library_id = link_gog(settings, user_id)
    owned = owned_products(gog_sim, user_id)
    first_title = min(product(p)["title"] for p in owned if not is_delisted(p) and not is_movie(p))
    bought = next(
        p
        for p in owned_products(gog_sim, gog_user_id_for(3_000, seed=67))
        if p not in owned
        and not is_movie(p)
        and not is_delisted(p)
        and product(p)["title"] < first_title
    )

    def buy_after_first_page(_library_id: str, page: int) -> None:
        if page == 1:
            gog_admin(gog_sim, f"libraries/{user_id}", {"add": [bought]})

    outcome = make_engine(after_batch=buy_after_first_page).sync(library_id)
    stored = rows(runtime, library_id)
    games = [p for p in owned if not is_movie(p)]
    # The owned list was read before the purchase: this sync stores what was owned then,
    # each once (the product pushed from page 1 to page 2 was seen twice, written once).
    assert set(stored) == {str(p) for p in games} and outcome.new_games == len(games)
    again = make_engine().sync(library_id)
    assert (
        again.new_games == 1
        and rows(runtime, library_id)[str(bought)][0] == product(bought)["title"]
    )


def test_a_sync_killed_after_page_3_resumes_at_page_4(runtime, settings, gog_sim, make_engine):
    user_id = gog_user_id_for(700, seed=68)
    library_id = link_gog(settings, user_id)

    def die_after_page_3(_library_id: str, page: int) -> None:
        if page == 3:
            raise Crash

    with pytest.raises(Crash):
        make_engine(after_batch=die_after_page_3).sync(library_id)
    [(checkpoint, processed)] = fetch_all(
        runtime,
        "SELECT resume_after, games_processed FROM sync_runs WHERE library_id = %s",
        library_id,
    )
    assert checkpoint == 3 and processed == len(rows(runtime, library_id)) > 250  # 3 pages
    runtime.redis.delete(f"sync:lock:{library_id}")  # the dead worker's lease, lapsed
    pages_before = products_calls(gog_sim)
    outcome = make_engine().sync(library_id)
    games = [p for p in owned_products(gog_sim, user_id) if not is_movie(p)]
    assert products_calls(gog_sim) - pages_before == 5  # the movies' list, then pages 4 to 7
    assert outcome.status == "completed" and outcome.new_games == len(games)
    assert set(rows(runtime, library_id)) == {str(p) for p in games}
    assert fetch_all(
        runtime, "SELECT attempts, status FROM sync_runs WHERE library_id = %s", library_id
    ) == [(2, "completed")]


def test_a_revoked_account_ends_relink_required_and_keeps_its_games(
    runtime, settings, gog_sim, make_engine
):
    user_id = gog_user_id_for(120, seed=69)
    library_id = link_gog(settings, user_id)
    make_engine().sync(library_id)
    before = rows(runtime, library_id)
    gog_admin(gog_sim, f"revoke/{user_id}")
    # The stored access token looks fresh: GOG refuses it, and the attempt says so...
    with pytest.raises(GogUnauthorized):
        make_engine().sync(library_id)
    # ...its retry refreshes first, and GOG refuses the refresh: link the account again.
    outcome = make_engine().sync(library_id)
    assert outcome.status == "relink_required" and outcome.error["code"] == "relink_required"
    [(status, failures, due_in)] = fetch_all(
        runtime,
        "SELECT sync_status, account_failures, next_sync_at - now() FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert (status, failures) == ("relink_required", 1) and due_in > timedelta(hours=23)
    assert rows(runtime, library_id) == before

    assert link_gog(settings, user_id) == library_id  # the user links the account again
    [(status, failures, due_first)] = fetch_all(
        runtime,
        "SELECT sync_status, account_failures, next_sync_at = '-infinity' FROM user_libraries"
        " WHERE library_id = %s",
        library_id,
    )
    assert (status, failures, due_first) == ("never_synced", 0, True)
    assert make_engine().sync(library_id).status == "completed"


def test_private_stats_keep_the_stored_playtimes(runtime, settings, gog_sim, make_engine):
    user_id = gog_user_id_for(150, GogKind.PRIVATE_STATS, seed=70)
    library_id = link_gog(settings, user_id)
    outcome = make_engine().sync(library_id)
    assert outcome.status == "completed"
    assert all(r[1] == 0 for r in rows(runtime, library_id).values())


@pytest.mark.parametrize("seed", [1, 2])
def test_differential_gog_syncs_equal_the_truth(runtime, settings, gog_sim, make_engine, seed):
    """Random histories (sessions, purchases, removals, nothing), some syncs killed after a
    page: after every sync the rows are exactly the account's library, and a sync that
    reads everything again (SYNC_DIFFERENTIAL=false) finds nothing to change."""
    rng = random.Random(seed)
    user_id = gog_user_id_for(430, seed=80 + seed)
    account = parse_account(user_id)
    assert account is not None
    library_id = link_gog(settings, user_id)
    catalog = owned_products(gog_sim, gog_user_id_for(3_000, seed=90 + seed))
    for step in range(6):
        owned = owned_products(gog_sim, user_id)
        games = [p for p in owned if not is_movie(p) and not is_dlc(p)]
        kind = rng.choice(["none", "play", "buy", "remove", "mixed"]) if step else "none"
        change: dict[str, Any] = {}
        if kind in ("play", "mixed"):
            change["bump_playtime"] = {str(p): rng.randint(1, 300) for p in rng.sample(games, 5)}
        if kind in ("buy", "mixed"):
            change["add"] = rng.sample([p for p in catalog if p not in owned], 3)
        if kind in ("remove", "mixed"):
            change["remove"] = rng.sample(owned, 4)
        if change:
            gog_admin(gog_sim, f"libraries/{user_id}", change)

        def crash_at(_library_id: str, page: int, at: int = rng.choice([0, 0, 2])) -> None:
            if page == at:
                raise Crash

        try:
            outcome = make_engine(after_batch=crash_at).sync(library_id)
        except Crash:
            runtime.redis.delete(f"sync:lock:{library_id}")
            outcome = make_engine().sync(library_id)
        context = f"seed {seed}, step {step}, change {change}"
        assert outcome.status == "completed", context
        assert rows_as_truth(runtime, library_id) == truth(gog_sim, account), context
        if step and not change:
            assert outcome.api_calls == 3 and outcome.updated_games == 0, context

    full = runtime.settings.model_copy(update={"sync_differential": False})
    again = make_engine(settings=full).sync(library_id)
    assert (again.new_games, again.updated_games, again.removed_games) == (0, 0, 0)


def rows_as_truth(runtime, library_id: str) -> dict[str, tuple[Any, ...]]:
    """{product id: (title, playtime)} of the owned rows."""
    return {
        game_id: (title, minutes)
        for game_id, (title, minutes, _last, removed) in rows(runtime, library_id).items()
        if not removed
    }


def truth(simulator, account) -> dict[str, tuple[Any, ...]]:
    """What the account owns, as the library should store it."""
    expected = {}
    for p in simulator.gog.owned(account):
        if is_movie(p):
            continue
        stat = simulator.gog.stats_for(account, p)
        expected[str(p)] = (
            None if is_delisted(p) else product(p)["title"],
            stat["playtime"] if stat else 0,
        )
    return expected


def test_a_cancel_stops_between_pages_and_keeps_the_pages_written(
    runtime, settings, gog_sim, make_engine
):
    library_id = link_gog(settings, gog_user_id_for(600, seed=73))

    def cancel_after_page_2(_library_id: str, page: int) -> None:
        if page == 2:  # what `cancel_sync` does for the message running it
            runtime.redis.sadd(keys.cancel_key(_library_id), "message-1")

    outcome = make_engine(after_batch=cancel_after_page_2).sync(library_id, owner="message-1")
    runtime.redis.delete(f"sync:lock:{library_id}")
    assert outcome.status == "cancelled"
    assert 150 < len(rows(runtime, library_id)) == outcome.total_games < 300  # 2 pages


def test_out_of_budget_a_gog_sync_steps_back_and_resumes_at_its_page(
    runtime, settings, gog_sim, make_engine
):
    """The `gog_api` budget runs out mid-paging: the sync defers (the message steps back
    into the queue, no retry spent), its pages kept; with budget again it goes on."""
    user_id = gog_user_id_for(800, seed=74)
    library_id = link_gog(settings, user_id)
    account = parse_account(user_id)
    assert account is not None
    played = [p for p in gog_sim.gog.owned(account) if gog_sim.gog.stats_for(account, p)]
    # The link's 2 calls, userData, the owned ids, the stats pages, the movies, 3 pages.
    budget = 2 + 2 + math.ceil(len(played) / 50) + 1 + 3
    tight = runtime.settings.model_copy(
        update={"gog_calls_per_window": budget, "gog_window_seconds": 600}
    )
    engine = make_engine(settings=tight)
    engine.gate = RateLimiter.from_settings(runtime.redis, tight, max_wait_s=0)
    with pytest.raises(RateLimitDeferred):
        engine.sync(library_id)
    [(status, checkpoint)] = fetch_all(
        runtime, "SELECT status, resume_after FROM sync_runs WHERE library_id = %s", library_id
    )
    assert (status, checkpoint) == ("running", 3)
    runtime.redis.delete("sync:ratelimit:gog_api:window")  # the window has passed
    outcome = make_engine().sync(library_id)
    assert outcome.status == "completed"
    assert fetch_all(
        runtime, "SELECT attempts FROM sync_runs WHERE library_id = %s", library_id
    ) == [(2,)]


def test_an_empty_owned_list_keeps_the_stored_games(runtime, settings, gog_sim, make_engine):
    """GOG answering that the account owns nothing is kept from wiping the library."""
    user_id = gog_user_id_for(120, seed=75)
    library_id = link_gog(settings, user_id)
    make_engine().sync(library_id)
    before = rows(runtime, library_id)
    gog_admin(gog_sim, f"libraries/{user_id}", {"remove": owned_products(gog_sim, user_id)})
    outcome = make_engine().sync(library_id)
    assert outcome.status == "completed" and outcome.removed_games == 0
    assert rows(runtime, library_id) == before
