"""Steam's compact answer split on bytes gives exactly what parsing it as JSON gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync_worker.errors import PrivateProfile, SteamBadResponse
from sync_worker.platforms import steam
from sync_worker.platforms.compact_split import CompactEntries, NotCompact
from sync_worker.platforms.owned_library import OwnedLibrary, ReceivedAnswer

TRICKY_GAMES: list[dict[str, Any]] = [
    {"appid": 730, "name": 'Quote "},{"appid":1 inside', "playtime_forever": 5},
    {"appid": 10, "name": "Braces {in} {names}", "content_descriptorids": [2, 5]},
    {"appid": 20, "name": "Café ☃ ドラゴン", "playtime_2weeks": 3, "rtime_last_played": 1},
    {"appid": 30},
    {"appid": 10, "name": "The repeat: the last one wins", "playtime_forever": 99},
]


def compact(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


# Escapes PostgreSQL cannot store (a NUL, a lone surrogate), as Steam would send them.
UNSTORABLE = rb'{"appid":40,"name":"NUL \u0000 and a lone \ud800","img_icon_url":"abc"}'


def tricky_body() -> bytes:
    games = compact(TRICKY_GAMES)
    return b'{"response":{"game_count":6,"games":[' + UNSTORABLE + b"," + games[1:] + b"}}"


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read_both(body: bytes, size: int) -> tuple[OwnedLibrary, OwnedLibrary]:
    """The body split on bytes, and parsed as JSON."""
    split = steam._split_owned_games(ReceivedAnswer(chunked(body, size)))
    parsed = steam._parse_owned_games(ReceivedAnswer(chunked(body, size)))
    return split, parsed


def everything(owned: OwnedLibrary) -> tuple[Any, ...]:
    games = owned.games(0, len(owned))
    return list(owned.ids()), owned.slices, games, owned.answer


@pytest.mark.parametrize("size", [1, 7, 10, 64, 1 << 20])
def test_a_compact_answer_splits_exactly_as_it_parses(size):
    """Same games, bytes, slice digests and answer digest, whatever the chunk edges."""
    split, parsed = read_both(tricky_body(), size)
    with split, parsed:
        assert everything(split) == everything(parsed)
        assert len(split) == 5 and split.games(0, 1)[0].playtime_minutes == 99
        assert split.games(3, 4)[0].title == "NUL  and a lone ?"  # as `storable` makes it


def test_a_simulated_library_splits_exactly_as_it_parses(sim):
    from sync_worker.simulator import steam_id_for

    body = compact({"response": {"game_count": 1, "games": sim.owned_games(steam_id_for(2_000))}})
    split, parsed = read_both(body, 1 << 16)
    with split, parsed:
        assert len(split) == 2_000 and everything(split) == everything(parsed)


@pytest.mark.parametrize(
    "body",
    [
        # A nested object with its own app id: cut there, the piece does not balance.
        compact(
            {
                "response": {
                    "game_count": 1,
                    "games": [{"appid": 1, "dlc": [{"appid": 2}, {"appid": 3}]}],
                }
            }
        ),
        compact({"response": {"game_count": 1, "games": [{"appid": 1, "x": [{"appid": 2}]}]}}),
        json.dumps({"response": {"game_count": 2, "games": TRICKY_GAMES[:2]}}, indent=1).encode(),
        compact({"response": {"game_count": 1, "games": [{"appid": 1, "name": "{ alone"}]}}),
        compact({"response": {"game_count": 1, "games": [{"playtime_forever": 1, "appid": 5}]}}),
        compact({"response": {"game_count": 1, "games": [{"appid": "5"}]}}),
        compact({"response": {"game_count": 1}, "games": [{"appid": 5}]}),
    ],
)
def test_other_layouts_are_not_split_but_still_read(body):
    """Not Steam's layout: the splitter refuses, and the JSON parser reads it right."""
    with pytest.raises(NotCompact):
        steam._split_owned_games(ReceivedAnswer([body]))
    with steam.read_owned_games(chunked(body, 5)) as owned:
        expected = steam._parse_owned_games(ReceivedAnswer([body]))
        with expected:
            assert everything(owned) == everything(expected)


@pytest.mark.parametrize(
    "body",
    [
        compact({"response": {"game_count": 2, "games": TRICKY_GAMES[:2]}})[:-9],  # cut off
        compact({"response": {"game_count": 2, "games": TRICKY_GAMES[:2]}}) + b"x",
        b'{"response":{"game_count":1,"games":[{"appid":1},]}}',
    ],
)
def test_broken_answers_are_still_refused(body):
    with pytest.raises(SteamBadResponse):
        steam.read_owned_games(chunked(body, 3))


def test_empty_and_private_answers_keep_their_meaning():
    with steam.read_owned_games([b'{"response":{"game_count":0,"games":[]}}']) as owned:
        assert len(owned) == 0
    with steam.read_owned_games([b'{"response":{"game_count":0}}']) as owned:
        assert len(owned) == 0
    with pytest.raises(PrivateProfile):
        steam.read_owned_games([b'{"response":{}}'])


def test_an_entry_broken_inside_is_refused_when_it_is_written():
    """Entries are parsed only when written: a broken one fails the sync then, as a bad
    answer (retried), after the batches before it were committed."""
    body = b'{"response":{"game_count":2,"games":[{"appid":1},{"appid":2,"name":"x"oops}]}}'
    with steam.read_owned_games([body]) as owned:
        assert owned.games(0, 1)[0].platform_game_id == "1"
        with pytest.raises(SteamBadResponse):
            owned.games(1, 2)


def test_entries_and_envelope_come_back_exactly():
    body = b'{"response":{"game_count":2,"games":[{"appid":1},{"appid":2,"x":[1]}]},"z":1}'
    entries = CompactEntries(chunked(body, 4))
    assert list(entries) == [b'{"appid":1}', b'{"appid":2,"x":[1]}']
    assert entries.found and entries.envelope == b'{"response":{"game_count":2,"games":[]},"z":1}'


def test_app_ids_outside_32_bits_are_skipped_like_entries_without_one():
    games = [{"appid": -5}, {"appid": 2**40}, {"appid": 99999999999}, {"appid": 7}]
    body = compact({"response": {"game_count": 4, "games": games}})
    with steam.read_owned_games(chunked(body, 8)) as owned:
        assert list(owned.ids()) == ["7"]
