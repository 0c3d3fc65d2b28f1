"""The Steam adapter over real HTTP against the simulator: shapes, quirks, errors, secrecy."""

from __future__ import annotations

import json
import traceback
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from sync_worker.errors import (
    InvalidSteamId,
    PrivateProfile,
    SteamBadResponse,
    SteamKeyRejected,
    SteamRateLimited,
    SteamTimeout,
    SteamUnavailable,
    VanityNotFound,
)
from sync_worker.platforms import OwnedGame
from sync_worker.platforms.steam import SteamClient, normalise_game
from sync_worker.simulator import ProfileKind, steam_id_for
from tests.conftest import TEST_KEY

FIXTURE = Path(__file__).parent.parent / "fixtures" / "getownedgames_legacy_487games.json"


def fetch_games(client: SteamClient, steam_id: str) -> list[OwnedGame]:
    """Every game of the library, rebuilt from the adapter's compact form."""
    with client.fetch_owned_games(steam_id) as owned:
        return owned.games(0, len(owned))


@pytest.fixture
def steam(settings, runtime) -> SteamClient:
    """A client on the simulator (runtime: so the simulator is reset per test)."""
    return SteamClient(settings)


def test_owned_games_are_sorted_deduplicated_and_include_free_games(steam, sim):
    """The adapter asks for free games and returns them ordered by app id."""
    steam_id = steam_id_for(300, seed=21)
    games = fetch_games(steam, steam_id)
    ids = [g.sort_key for g in games]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids == sim.owned_app_ids(steam_id)
    assert any(g % 13 == 0 for g in ids)  # the simulator's free games
    assert steam.api_calls == 1


def test_private_profile_and_private_game_details_raise_private_profile(steam):
    """`{"response": {}}` means hidden, for both kinds of privacy."""
    for kind in (ProfileKind.PRIVATE, ProfileKind.PRIVATE_GAME_DETAILS):
        with pytest.raises(PrivateProfile):
            steam.fetch_owned_games(steam_id_for(10, kind))


def test_zero_game_profile_returns_an_empty_library(steam):
    """`{"game_count": 0}` without a games key is a real, empty library."""
    assert fetch_games(steam, steam_id_for(0)) == []


def test_invalid_steam_id_is_rejected_before_any_http_call(steam, sim):
    """Bad ids never reach Steam."""
    for bad in ["123", "76561197960265728x", "86561197960265728", " ", "7656119796026572800"]:
        with pytest.raises(InvalidSteamId):
            steam.fetch_owned_games(bad)
    assert sim.stats()["total"] == 0 and steam.api_calls == 0


def test_only_ascii_digits_make_a_steam_id(steam, sim):
    """Other scripts' digits (Arabic-Indic, fullwidth) are digits to Python, not to Steam:
    accepting them would register a second library for one account."""
    for digits in ("\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669", "\uff10" * 10):
        spoofed = f"7656119{digits}"
        for identity in (spoofed, f"https://steamcommunity.com/profiles/{spoofed}"):
            with pytest.raises(InvalidSteamId):
                steam.resolve_identity(identity)
        with pytest.raises(InvalidSteamId):
            steam.fetch_owned_games(spoofed)
    assert sim.stats()["total"] == 0


def test_bad_key_raises_key_rejected_without_the_key_in_text_or_traceback(settings, sim):
    """403 'verify your key' is permanent, and the key appears nowhere in the error."""
    secret = "SECRET-KEY-a8f3e2b1"
    client = SteamClient(settings.model_copy(update={"steam_api_key": SecretStr(secret)}))
    with pytest.raises(SteamKeyRejected) as caught:
        client.fetch_owned_games(steam_id_for(5))
    rendered = "".join(traceback.format_exception(caught.value))
    assert caught.value.code == "steam_key_rejected"
    assert secret not in rendered and secret not in repr(caught.value.to_dict())


def test_connection_errors_carry_no_url_or_key(settings):
    """A refused connection (whose requests text holds the URL) becomes a clean transient error."""
    client = SteamClient(settings.model_copy(update={"steam_api_base_url": "http://127.0.0.1:9"}))
    with pytest.raises(SteamUnavailable) as caught:
        client.fetch_owned_games(steam_id_for(5))
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert TEST_KEY not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"kind": "status", "status": 503}, SteamUnavailable),
        ({"kind": "status", "status": 429}, SteamRateLimited),
        ({"kind": "status", "status": 403}, SteamRateLimited),  # Steam's 403 that means 429
        ({"kind": "truncate"}, SteamBadResponse),
    ],
)
def test_steam_failures_map_to_transient_errors(steam, sim, fault, error):
    """5xx, 429 and truncated bodies are transient, each with its own code."""
    sim.fault(match="GetOwnedGames", count=1, **fault)
    with pytest.raises(error):
        steam.fetch_owned_games(steam_id_for(20))
    assert len(fetch_games(steam, steam_id_for(20))) > 0  # the next call succeeds


def test_slow_steam_times_out(settings, sim):
    """Every call has a read timeout."""
    client = SteamClient(settings.model_copy(update={"steam_read_timeout_s": 0.3}))
    sim.fault(match="GetOwnedGames", kind="delay", delay_s=1.0, count=1)
    with pytest.raises(SteamTimeout):
        client.fetch_owned_games(steam_id_for(20))


def test_identity_resolution_accepts_ids_profile_urls_and_vanity_names(steam, sim):
    """Three spellings of one account; vanity names cost one call, the others none."""
    steam_id = steam_id_for(42)
    assert steam.resolve_identity(steam_id) == steam_id
    assert steam.resolve_identity(f"https://steamcommunity.com/profiles/{steam_id}/") == steam_id
    assert sim.stats()["total"] == 0
    assert steam.resolve_identity("https://steamcommunity.com/id/lib42") == steam_id
    assert steam.resolve_identity("lib42") == steam_id
    with pytest.raises(VanityNotFound):
        steam.resolve_identity("nobody-here")
    with pytest.raises(InvalidSteamId):
        steam.resolve_identity("https://example.com/not/steam")


def test_an_oversized_custom_url_is_bad_input_without_a_call(steam, sim):
    """Steam custom URLs are at most 32 characters: a 100 KB one is the user's mistake (Steam
    would answer 414, once seen here as a transient outage), and costs no call."""
    with pytest.raises(InvalidSteamId):
        steam.resolve_identity("https://steamcommunity.com/id/" + "a" * 100_000)
    assert sim.stats()["total"] == 0


def test_display_name_comes_from_player_summaries(steam):
    """The persona name of a registered account."""
    assert steam.display_name(steam_id_for(42)) == f"Player {steam_id_for(42)[-6:]}"


def test_real_2015_payload_normalises_every_game():
    """The captured 487-game response: legacy logo hashes, unicode, shared names, unsorted."""
    raw = json.loads(FIXTURE.read_text(encoding="utf-8"))["response"]["games"]
    games = [normalise_game(g) for g in raw]
    assert len(games) == 487 and all(g is not None for g in games)
    by_id = {g.platform_game_id: g for g in games if g}
    cs = by_id["10"]
    assert cs.title == "Counter-Strike" and cs.playtime_minutes == 32
    assert cs.icon_url == (
        "https://media.steampowered.com/steamcommunity/public/images/apps/10/"
        "6b0312cda02f5f777efa2f3318c307ff9acafbb5.jpg"
    )
    assert cs.last_played_at is None and cs.playtime_2weeks_minutes == 0
    titles = [g.title for g in games if g]
    assert len(set(titles)) < len(titles)  # two app ids share a name, both kept


def test_normalisation_of_modern_quirks():
    """Empty icon hashes, 1970 dates, missing optionals and junk entries."""
    recent = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())
    game = normalise_game(
        {
            "appid": 570,
            "name": "Dota 2",
            "img_icon_url": "",
            "playtime_forever": 10,
            "playtime_2weeks": 3,
            "rtime_last_played": recent,
        }
    )
    assert game is not None
    assert game.icon_url is None and game.playtime_2weeks_minutes == 3
    assert game.last_played_at == datetime(2024, 5, 1, tzinfo=UTC)
    ancient = normalise_game({"appid": 20, "rtime_last_played": 86_400})
    assert ancient is not None and ancient.last_played_at is None and ancient.title is None
    assert normalise_game({"name": "no appid"}) is None and normalise_game("junk") is None
