"""The simulator speaks Steam's shapes and quirks over real HTTP."""

from __future__ import annotations

import requests

from sync_worker.simulator import ProfileKind, steam_id_for
from sync_worker.simulator.ids import parse_profile
from tests.conftest import TEST_KEY


def owned(url: str, steam_id: str, **params: object) -> requests.Response:
    return requests.get(
        f"{url}/IPlayerService/GetOwnedGames/v1/",
        params={"key": TEST_KEY, "steamid": steam_id, **params},
        timeout=10,
    )


def test_generated_library_size_and_content_follow_the_steam_id(simulator):
    """Same id, same games; the id's last five digits give the count (free games opt-in)."""
    steam_id = steam_id_for(1_234, seed=3)
    first = owned(simulator.url, steam_id, include_appinfo=1, include_played_free_games=1).json()
    again = owned(simulator.url, steam_id, include_appinfo=1, include_played_free_games=1).json()
    assert first == again and first["response"]["game_count"] == 1_234
    without_free = owned(simulator.url, steam_id, include_appinfo=1).json()["response"]
    assert 0 < without_free["game_count"] < 1_234
    ids = [g["appid"] for g in first["response"]["games"]]
    assert ids != sorted(ids)  # Steam does not sort


def test_include_appinfo_controls_names_and_icons(simulator):
    """Without include_appinfo games carry only ids and playtimes."""
    games = owned(simulator.url, steam_id_for(50), include_played_free_games=1).json()["response"][
        "games"
    ]
    assert all("name" not in g and "img_icon_url" not in g for g in games)
    assert all("playtime_forever" in g for g in games)


def test_private_zero_and_invalid_profiles_answer_like_steam(simulator):
    """Private: `{"response": {}}`; zero games: no games key; invalid id: HTTP 500."""
    assert owned(simulator.url, steam_id_for(9, ProfileKind.PRIVATE)).json() == {"response": {}}
    assert owned(simulator.url, steam_id_for(0)).json() == {"response": {"game_count": 0}}
    assert owned(simulator.url, "12345").status_code == 500


def test_bad_key_gets_steams_html_403(simulator):
    """The 403 page says retrying will not help."""
    response = requests.get(
        f"{simulator.url}/IPlayerService/GetOwnedGames/v1/",
        params={"key": "nope", "steamid": steam_id_for(1)},
        timeout=5,
    )
    assert response.status_code == 403 and "verify your" in response.text


def test_vanity_and_summaries(simulator):
    """lib<N> resolves; other names miss with success 42; summaries flag private profiles."""
    base = f"{simulator.url}/ISteamUser"
    hit = requests.get(
        f"{base}/ResolveVanityURL/v1/", params={"key": TEST_KEY, "vanityurl": "lib7"}, timeout=5
    )
    miss = requests.get(
        f"{base}/ResolveVanityURL/v1/", params={"key": TEST_KEY, "vanityurl": "zz"}, timeout=5
    )
    assert hit.json()["response"] == {"success": 1, "steamid": steam_id_for(7)}
    assert miss.json()["response"]["success"] == 42
    ids = f"{steam_id_for(1)},{steam_id_for(1, ProfileKind.PRIVATE)}"
    players = requests.get(
        f"{base}/GetPlayerSummaries/v2/", params={"key": TEST_KEY, "steamids": ids}, timeout=5
    )
    assert [p["communityvisibilitystate"] for p in players.json()["response"]["players"]] == [3, 1]


def test_store_appdetails_quirks(simulator):
    """Unavailable apps say success false; DLC has a string fullgame appid."""

    def details(app_id: int) -> dict:
        return requests.get(
            f"{simulator.url}/api/appdetails", params={"appids": app_id}, timeout=5
        ).json()[str(app_id)]

    assert details(970) == {"success": False}
    dlc = details(110)["data"]
    assert dlc["type"] == "dlc" and isinstance(dlc["fullgame"]["appid"], str)


def test_library_changes_and_call_counter(sim):
    """Admin changes apply between calls; the counter counts every Steam call."""
    steam_id = steam_id_for(30)
    before = sim.owned_app_ids(steam_id)
    sim.change_library(steam_id, remove=before[:2], add=[1_999_990])
    after = sim.owned_app_ids(steam_id)
    assert len(after) == 29 and 1_999_990 in after and before[0] not in after
    assert sim.calls() == 2


def test_rate_limit_answers_429_above_the_window(simulator, sim):
    """A configured limit rejects calls beyond N per window with HTML 429."""
    requests.post(f"{simulator.url}/_sim/rate-limit", json={"calls": 3, "window_s": 60}, timeout=5)
    codes = [owned(simulator.url, steam_id_for(1)).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429] and sim.stats()["rejected_429"] == 2


def test_profile_ids_round_trip():
    """steam_id_for and parse_profile agree; non-ids parse to None."""
    profile = parse_profile(steam_id_for(50_000, ProfileKind.PRIVATE_GAME_DETAILS, seed=999))
    assert profile is not None
    assert (profile.game_count, profile.kind, profile.seed) == (
        50_000,
        ProfileKind.PRIVATE_GAME_DETAILS,
        999,
    )
    big = parse_profile(steam_id_for(200_000, seed=3))
    assert big is not None and (big.game_count, big.seed) == (200_000, 3)
    assert parse_profile("7656119") is None
