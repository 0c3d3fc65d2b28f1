"""Reading appdetails, quirks included (through the simulator over HTTP, and odd payloads),
and claiming apps for enrichment."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from sync_worker.platforms.steam_store import SteamStore
from sync_worker.platforms.store_details import parse_app_details, parse_release_date
from sync_worker.simulator import catalog, steam_id_for
from tests.conftest import fetch_all


def test_store_details_come_back_typed_from_the_simulator(settings, sim):
    """A game, a DLC (string fullgame.appid), a soundtrack, a demo, a free game, a delisted app."""
    store = SteamStore(settings)
    game = store.app_details("20")
    assert game is not None and game.app_type == "game" and game.genres and game.developers
    assert game.data["steam_appid"] == 20 and isinstance(game.platforms, list)

    dlc = store.app_details("110")  # 110 % 11 == 0
    assert dlc is not None and (dlc.app_type, dlc.fullgame_app_id) == ("dlc", "100")
    assert store.app_details("190").app_type == "music"  # type: ignore[union-attr]
    assert store.app_details("230").app_type == "demo"  # type: ignore[union-attr]
    free = store.app_details("130")  # 130 % 13 == 0: free, no price_overview
    assert free is not None and free.is_free is True and "price_overview" not in free.data
    assert store.app_details("970") is None  # 970 % 97 == 0: success false
    assert sim.stats()["calls"] == {"appdetails": 6}


def test_every_simulated_app_parses_consistently_with_its_data():
    """2,000 apps: required_age int or string, requirements object or [], dates of every shape."""
    kinds = set()
    for app_id in range(10, 20_000, 10):
        body = catalog.app_details(app_id)
        details = parse_app_details(str(app_id), body)
        if app_id % 97 == 0:
            assert details is None
            continue
        assert details is not None
        data = body[str(app_id)]["data"]
        kinds.add((type(data["required_age"]), type(data["pc_requirements"])))
        assert details.required_age == int(data["required_age"])
        assert details.release_date == data["release_date"]["date"]
        assert details.coming_soon == data["release_date"]["coming_soon"]
        assert details.metacritic_score == data.get("metacritic", {}).get("score")
        assert details.data is data
    assert kinds == {(int, dict), (int, list), (str, dict), (str, list)}  # every quirk was met


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("9 Jul, 2013", date(2013, 7, 9)),
        ("Jul 9, 2013", date(2013, 7, 9)),
        ("9 July, 2013", date(2013, 7, 9)),
        ("Jul 2013", date(2013, 7, 1)),
        ("2013", date(2013, 1, 1)),
        ("Coming soon", None),
        ("Q3 2027", None),
        ("To be announced", None),
        ("", None),
        (None, None),
    ],
)
def test_release_dates_parse_where_possible(text, parsed):
    """Day-precise formats, a month, a year; anything else stays raw text only."""
    assert parse_release_date(text) == parsed


@pytest.mark.parametrize(
    "entry",
    [
        {"success": False},
        {"success": True},  # no data
        {"success": True, "data": []},
        {"success": "yes", "data": {"type": "game"}},
    ],
)
def test_answers_without_usable_data_mean_no_store_page(entry):
    """Anything but success true with a data object: no details."""
    assert parse_app_details("10", {"10": entry}) is None


def test_odd_field_types_become_null_not_errors():
    """Wrong types in every field: NULL columns, the data kept whole."""
    data = {
        "type": 7,
        "is_free": "false",
        "required_age": "sixteen",
        "developers": "Valve",
        "genres": ["Action"],
        "categories": [{"id": 2}],
        "platforms": ["windows"],
        "release_date": "2013",
        "metacritic": {"score": "high"},
        "fullgame": {"appid": 10},
    }
    details = parse_app_details("10", {"10": {"success": True, "data": data}})
    assert details is not None
    assert (details.is_free, details.required_age, details.developers) == (None, None, None)
    assert (details.genres, details.categories, details.platforms) == (None, None, None)
    assert (details.release_date, details.metacritic_score) == (None, None)
    assert details.fullgame_app_id == "10" and details.data == data


def test_two_libraries_claiming_at_once_never_deadlock_nor_overlap(runtime, register, make_engine):
    """20 rounds of two overlapping claims in parallel: disjoint, and together every app."""
    import threading

    from sync_worker.store.catalog import claim_for_library

    first = register(steam_id_for(400, seed=310))
    second = register(steam_id_for(440, seed=310))  # the same 400 apps, and 40 more
    make_engine().sync(first)
    make_engine().sync(second)
    every_app = {r[0] for r in fetch_all(runtime, "SELECT platform_game_id FROM games")}

    def claim(library_id: str, start: threading.Barrier, claims: dict[str, list[str]]) -> None:
        with runtime.pool.connection() as conn:
            start.wait()
            chunks = claim_for_library(conn, library_id, timedelta(days=30), timedelta(days=1), 50)
            claims[library_id] = [app_id for chunk in chunks for app_id in chunk]

    for _ in range(20):
        fetch_all(runtime, "UPDATE games SET enrich_queued_at = NULL RETURNING 1")
        claims: dict[str, list[str]] = {}
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=claim, args=(lib, start, claims)) for lib in (first, second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not set(claims[first]) & set(claims[second])
        assert set(claims[first]) | set(claims[second]) == every_app


def test_claims_are_kept_only_once_their_messages_are_sent(runtime, register, make_engine):
    """Redis down while queueing: the apps stay unclaimed (not held until the claim lapses)."""
    import redis

    from sync_worker.enrich.queueing import queue_for_library
    from sync_worker.runtime import Runtime
    from tests.conftest import free_port

    library_id = register(steam_id_for(30, seed=330))
    make_engine().sync(library_id)
    fetch_all(runtime, "UPDATE games SET enrich_queued_at = NULL RETURNING 1")
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    broken = Runtime(runtime.settings.model_copy(update={"redis_url": unreachable}))
    try:
        with pytest.raises(redis.ConnectionError):
            queue_for_library(broken, library_id)
    finally:
        broken.close()

    assert fetch_all(runtime, "SELECT count(*) FROM games WHERE enrich_queued_at IS NOT NULL") == [
        (0,)
    ]
    assert queue_for_library(runtime, library_id) == 30
