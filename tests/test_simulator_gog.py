"""The simulator's GOG side over real HTTP: OAuth with rotating refresh tokens, the
library endpoints and their quirks, profile stats (docs/simulator.md)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sync_worker.platforms.gog import CLIENT_ID, CLIENT_SECRET
from sync_worker.simulator import SimulatorServer
from sync_worker.simulator.gog import GogKind, gog_user_id_for, is_delisted, parse_account

REDIRECT = "https://embed.gog.com/on_login_success?origin=client"


class Gog:
    """A GOG client as the tests speak to the simulator."""

    def __init__(self, url: str) -> None:
        self.url = url

    def login(self, user_id: str, redirect: str = REDIRECT) -> str:
        """The code the login page's redirect carries."""
        answer = requests.get(
            f"{self.url}/auth",
            params={"client_id": CLIENT_ID, "redirect_uri": redirect, "response_type": "code",
                    "layout": "client2", "login": user_id},
            allow_redirects=False,
            timeout=5,
        )  # fmt: skip
        assert answer.status_code == 302
        location = urlsplit(answer.headers["Location"])
        assert location.netloc == "embed.gog.com"
        return parse_qs(location.query)["code"][0]

    def token(self, **grant: str) -> requests.Response:
        params = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **grant}
        return requests.get(f"{self.url}/token", params=params, timeout=5)

    def get(self, path: str, access: str, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {access}"}
        return requests.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)

    def tokens_for(self, user_id: str) -> dict[str, Any]:
        answer = self.token(
            grant_type="authorization_code", code=self.login(user_id), redirect_uri=REDIRECT
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def products(self, access: str, **params: Any) -> list[dict[str, Any]]:
        """Every page of getFilteredProducts, in order."""
        first = self.get("/account/getFilteredProducts", access, mediaType=1, page=1, **params)
        pages = [first.json()]
        for page in range(2, pages[0]["totalPages"] + 1):
            answer = self.get(
                "/account/getFilteredProducts", access, mediaType=1, page=page, **params
            )
            pages.append(answer.json())
        return [p for page in pages for p in page["products"]]


@pytest.fixture
def gog(simulator: SimulatorServer) -> Gog:
    """The session's simulator, reset, spoken to as GOG."""
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    return Gog(simulator.url)


def test_user_ids_name_deterministic_accounts():
    user_id = gog_user_id_for(250, GogKind.PRIVATE_STATS, seed=12)
    account = parse_account(user_id)
    assert account is not None and len(user_id) == 15
    assert (account.product_count, account.kind, account.seed) == (250, GogKind.PRIVATE_STATS, 12)
    assert parse_account(account.username) == account
    assert parse_account("76561198000000640") is None


def test_the_login_page_redirects_with_a_single_use_code(gog: Gog):
    form = requests.get(
        f"{gog.url}/auth", params={"client_id": CLIENT_ID, "redirect_uri": REDIRECT}, timeout=5
    )
    assert form.status_code == 200 and "<form" in form.text
    user_id = gog_user_id_for(10, seed=1)
    code = gog.login(user_id)
    tokens = gog.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT).json()
    assert tokens["user_id"] == user_id and tokens["expires_in"] == 3600
    assert tokens["access_token"] != tokens["refresh_token"]
    again = gog.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    elsewhere = gog.token(
        grant_type="authorization_code", code=gog.login(user_id), redirect_uri="https://x.example/"
    )
    assert elsewhere.status_code == 400
    wrong_client = requests.get(
        f"{gog.url}/token", params={"client_id": CLIENT_ID, "client_secret": "no"}, timeout=5
    )
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"


def test_refresh_tokens_rotate_and_die_with_a_revoked_account(gog: Gog, simulator):
    user_id = gog_user_id_for(10, seed=2)
    first = gog.tokens_for(user_id)
    second = gog.token(grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    reused = gog.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert gog.get("/userData.json", second["access_token"]).status_code == 200

    requests.post(f"{gog.url}/_sim/gog/expire-access", timeout=5).raise_for_status()
    assert gog.get("/userData.json", second["access_token"]).status_code == 401
    third = gog.token(grant_type="refresh_token", refresh_token=second["refresh_token"]).json()
    assert gog.get("/userData.json", third["access_token"]).status_code == 200

    requests.post(f"{gog.url}/_sim/gog/revoke/{user_id}", timeout=5).raise_for_status()
    assert gog.get("/userData.json", third["access_token"]).status_code == 401
    refused = gog.token(grant_type="refresh_token", refresh_token=third["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert requests.get(f"{gog.url}/_sim/stats", timeout=5).json()["gog_refreshes"] == 2


def test_owned_ids_and_a_checksum_that_follows_them(gog: Gog):
    user_id = gog_user_id_for(300, seed=3)
    access = gog.tokens_for(user_id)["access_token"]
    owned = gog.get("/user/data/games", access).json()["owned"]
    assert len(owned) == len(set(owned)) == 300
    assert all(1_000_000_000 <= p < 10_000_000_000 for p in owned)  # sparse 10-digit ids
    assert len({p >> 8 for p in owned}) == 300  # Steam's slices would hold one each
    data = gog.get("/userData.json", access).json()
    assert data["userId"] == user_id and data["username"] == f"sim_{user_id}"
    checksum = data["checksum"]["games"]
    assert gog.get("/userData.json", access).json()["checksum"]["games"] == checksum

    requests.post(
        f"{gog.url}/_sim/gog/libraries/{user_id}", json={"remove": [owned[0]]}, timeout=5
    ).raise_for_status()
    assert gog.get("/userData.json", access).json()["checksum"]["games"] != checksum
    assert owned[0] not in gog.get("/user/data/games", access).json()["owned"]


def test_product_pages_and_their_quirks(gog: Gog):
    user_id = gog_user_id_for(1_000, seed=4)
    access = gog.tokens_for(user_id)["access_token"]
    owned = gog.get("/user/data/games", access).json()["owned"]
    first = gog.get("/account/getFilteredProducts", access, mediaType=1, page=1).json()
    assert first["productsPerPage"] == 100 and len(first["products"]) == 100
    assert first["totalPages"] == math.ceil(first["totalProducts"] / 100)

    everything = gog.products(access, hiddenFlag=1)
    visible = gog.products(access)
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids)) and set(ids) <= set(owned)
    assert [(p["title"], p["id"]) for p in everything] == sorted(
        (p["title"], p["id"]) for p in everything
    )
    assert {p for p in owned if is_delisted(p)}.isdisjoint(ids)  # owned, on no page
    assert any(p["isHidden"] for p in everything) and not any(p["isHidden"] for p in visible)
    assert any(p["isMovie"] for p in everything)  # movies mixed into the games' pages
    assert any(not p["isGame"] and p["category"] == "DLC" for p in everything)
    assert any("releaseDate" not in p for p in everything)
    assert all(p["image"].startswith("//images-") for p in everything)
    movies = gog.get("/account/getFilteredProducts", access, mediaType=2, page=1).json()
    assert movies["products"] and all(p["isMovie"] for p in movies["products"])


def test_a_purchase_between_two_page_calls_shifts_the_pages(gog: Gog):
    """The title order puts a new purchase anywhere: the pages after it move by one."""
    user_id = gog_user_id_for(150, seed=5)
    access = gog.tokens_for(user_id)["access_token"]
    page_one = gog.get("/account/getFilteredProducts", access, mediaType=1, page=1).json()
    owned = set(gog.get("/user/data/games", access).json()["owned"])
    # A product sorting before everything on page one (the catalog has titles to spare).
    first_title = page_one["products"][0]["title"]
    buyer = Gog(gog.url)
    candidates = gog_user_id_for(3_000, seed=6)
    store = buyer.products(buyer.tokens_for(candidates)["access_token"])
    new = next(p for p in store if p["title"] < first_title and p["id"] not in owned)
    requests.post(
        f"{gog.url}/_sim/gog/libraries/{user_id}", json={"add": [new["id"]]}, timeout=5
    ).raise_for_status()
    page_two = gog.get("/account/getFilteredProducts", access, mediaType=1, page=2).json()
    assert page_two["products"][0]["id"] == page_one["products"][-1]["id"]  # seen twice


def test_stats_newest_session_first_private_or_missing(gog: Gog):
    user_id = gog_user_id_for(400, seed=7)
    access = gog.tokens_for(user_id)["access_token"]
    username = f"sim_{user_id}"
    first = gog.get(f"/u/{username}/games/stats", access, sort="recent_playtime", page=1).json()
    items = first["_embedded"]["items"]
    sessions = [i["stats"][user_id]["lastSession"] for i in items]
    assert sessions == sorted(sessions, reverse=True) and first["pages"] > 1
    # A game played long ago, played again now: its new session comes first.
    second = gog.get(f"/u/{username}/games/stats", access, page=2).json()["_embedded"]["items"]
    played, minutes = second[0]["game"]["id"], second[0]["stats"][user_id]["playtime"]
    requests.post(
        f"{gog.url}/_sim/gog/libraries/{user_id}",
        json={"bump_playtime": {played: 90}},
        timeout=5,
    ).raise_for_status()
    newest = gog.get(f"/u/{username}/games/stats", access, page=1).json()["_embedded"]["items"][0]
    assert newest["game"]["id"] == played and newest["stats"][user_id]["playtime"] == minutes + 90

    private = gog_user_id_for(50, GogKind.PRIVATE_STATS, seed=8)
    private_access = gog.tokens_for(private)["access_token"]
    assert gog.get(f"/u/sim_{private}/games/stats", private_access).status_code == 403
    empty = gog_user_id_for(50, GogKind.NO_STATS, seed=9)
    answer = gog.get(f"/u/sim_{empty}/games/stats", gog.tokens_for(empty)["access_token"]).json()
    assert answer["_embedded"]["items"] == [] and answer["total"] == 0


def test_faults_and_rate_limits_reach_gog_endpoints(gog: Gog):
    user_id = gog_user_id_for(20, seed=10)
    access = gog.tokens_for(user_id)["access_token"]
    requests.post(
        f"{gog.url}/_sim/faults",
        json={"match": "gog_products", "kind": "status", "status": 429, "retry_after": 7},
        timeout=5,
    ).raise_for_status()
    limited = gog.get("/account/getFilteredProducts", access, mediaType=1, page=1)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert gog.get("/account/getFilteredProducts", access, mediaType=1, page=1).ok
    requests.post(
        f"{gog.url}/_sim/faults", json={"match": "gog_owned", "kind": "truncate"}, timeout=5
    ).raise_for_status()
    cut = gog.get("/user/data/games", access)
    with pytest.raises(ValueError):
        cut.json()
