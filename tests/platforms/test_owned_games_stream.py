"""Reading GetOwnedGames as it arrives: any chunking, strict JSON, compact storage."""

from __future__ import annotations

import json

import pytest

from sync_worker.errors import PrivateProfile, SteamBadResponse
from sync_worker.platforms.json_stream import ArrayStream, JsonStreamError
from sync_worker.platforms.owned_library import SLICE_BITS, OwnedLibrary, SameAnswer, iter_batches
from sync_worker.platforms.steam import read_owned_games

DOCUMENT = {
    "response": {
        "game_count": 3,
        "games": [
            {"appid": 20, "name": "Café ☃ ドラゴン", "playtime_forever": 5},
            {"appid": 10, "tags": [1, 2.5e3, {"deep": None}], "playtime_forever": 1},
            7,
        ],
    },
    "other": [1, {"x": "y"}],
}


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 20])
def test_items_and_envelope_survive_any_chunking(size):
    """Chunk edges inside strings, numbers and multi-byte characters change nothing."""
    body = json.dumps(DOCUMENT, ensure_ascii=False, indent=1).encode()
    stream = ArrayStream(chunked(body, size), ("response", "games"))
    items = list(stream)
    assert [value for value, _ in items] == DOCUMENT["response"]["games"]
    assert [json.loads(text) for _, text in items] == DOCUMENT["response"]["games"]
    assert stream.envelope == {"response": {"game_count": 3}, "other": [1, {"x": "y"}]}
    assert stream.found


@pytest.mark.parametrize(
    "body",
    [
        b'{"response": {"games": [1, 2',
        b'{"response": {"games": [1 2]}}',
        b'{"response": {"games": [NaN]}}',
        b'{"response": {}} trailing',
        b'{"a": 1,}',
        b'{"a": 1 "b": 2}',
        b"",
    ],
)
def test_invalid_json_is_refused(body):
    """Truncated, malformed or non-standard JSON raises, whatever the chunking."""
    for size in (1, 5, 100):
        with pytest.raises(JsonStreamError):
            list(ArrayStream(chunked(body, size), ("response", "games")))


def test_owned_library_is_sorted_deduplicated_and_sliced():
    """Ids in order, a repeated id keeps its last entry, slices cover every game once."""
    width = 1 << SLICE_BITS
    app_ids = [5 * width + 3, 10, 2 * width, 10, 2 * width + 7, width + 6]
    games = [{"appid": a, "playtime_forever": 1} for a in app_ids]
    games[3] = {"appid": 10, "playtime_forever": 99}  # the repeat: the last one wins
    body = json.dumps({"response": {"game_count": 6, "games": games}}).encode()
    with read_owned_games(chunked(body, 16)) as owned:
        listed = owned.games(0, len(owned))
        assert [g.sort_key for g in listed] == sorted(set(app_ids))
        assert listed[0].playtime_minutes == 99
        assert [(s.number, s.start, s.end) for s in owned.slices] == [
            (0, 0, 1),
            (1, 1, 2),
            (2, 2, 4),
            (5, 4, 5),
        ]
        expected_ids = [str(a) for a in sorted(set(app_ids))]
        assert list(owned.ids()) == expected_ids and len(owned.ids()) == 5
        assert str(2 * width) in owned.ids() and str(2 * width + 1) not in owned.ids()


def test_a_changed_game_changes_only_its_slice_digest():
    """Digests follow content: one playtime differs, one slice differs."""

    def digests(playtime: int) -> list[bytes]:
        games = [{"appid": a, "playtime_forever": 1} for a in range(10, 20_000, 10)]
        games[500]["playtime_forever"] = playtime
        body = json.dumps({"response": {"game_count": len(games), "games": games}}).encode()
        with read_owned_games([body]) as owned:
            return [s.digest for s in owned.slices]

    before, after = digests(1), digests(2)
    assert len(before) == len(after) > 10
    assert sum(b != a for b, a in zip(before, after, strict=True)) == 1


def test_batches_are_exact_and_finish_slices_once():
    """Batches hold `size` games; every slice's digest is saved with its last game."""
    body = json.dumps(
        {"response": {"game_count": 300, "games": [{"appid": a} for a in range(7, 3000, 10)]}}
    ).encode()
    with read_owned_games([body]) as owned:
        batches = list(iter_batches(owned.slices, 0, 64))
        assert [len(b) for b in batches] == [64, 64, 64, 64, 44]
        finished = [s for b in batches for s in b.finished]
        assert finished == owned.slices
        for batch in batches:
            assert all(s.end <= batch.end for s in batch.finished)
        resumed = list(iter_batches(owned.slices, 100, 64))
        assert resumed[0].ranges[0][0] == 100 and sum(len(b) for b in resumed) == 200


def test_private_and_malformed_answers():
    """No game_count is private; no response object or bad JSON is a bad response."""
    with pytest.raises(PrivateProfile):
        read_owned_games([b'{"response": {}}'])
    for body in (b'{"response": []}', b"[1]", b'{"response": {"game_count": 1, "games": [{'):
        with pytest.raises(SteamBadResponse):
            read_owned_games([body])
    with read_owned_games([b'{"response": {"game_count": 0}}']) as owned:
        assert len(owned) == 0 and owned.slices == []


def test_an_answer_whose_digest_is_known_comes_back_unparsed():
    """The digest is of the bytes, whatever the chunking; a known one skips parsing, and
    a changed byte does not."""
    body = json.dumps({"response": {"game_count": 1, "games": [{"appid": 10}]}}).encode()
    with read_owned_games([body]) as owned:
        known = owned.answer

    assert read_owned_games(chunked(body, 3), known) == SameAnswer(known)
    changed = body.replace(b'"appid": 10', b'"appid": 20')
    with read_owned_games(chunked(changed, 3), known) as other:
        assert isinstance(other, OwnedLibrary) and other.answer != known
        assert [g.platform_game_id for g in other.games(0, len(other))] == ["20"]
