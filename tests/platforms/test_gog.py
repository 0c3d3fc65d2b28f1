"""The GOG adapter against the simulator over real HTTP: grants, the library endpoints,
every failure mapped to our errors, the shared `gog_api` budget, no token in any error."""

from __future__ import annotations

import time
import traceback
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sync_worker.errors import (
    GogBadResponse,
    GogLoginRejected,
    GogUnauthorized,
    GogUnavailable,
    RelinkRequired,
)
from sync_worker.platforms.gog import REDIRECT_URI, GogAuth, GogLibrary, login_url
from sync_worker.ratelimit import RateLimiter
from sync_worker.simulator.gog import GogKind, gog_user_id_for


@pytest.fixture
def gog_settings(settings, simulator):
    """The test settings with GOG's three hosts at the simulator."""
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    return settings.model_copy(
        update={
            "gog_auth_base_url": simulator.url,
            "gog_embed_base_url": simulator.url,
            "gog_www_base_url": simulator.url,
        }
    )


def login(settings, user_id: str) -> str:
    """What the user's browser does: log in, land on the redirect, whose URL has the code."""
    answer = requests.get(
        f"{login_url(settings)}&login={user_id}", allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI.split("?")[0]
    return parse_qs(location.query)["code"][0]


def fault(simulator, **spec) -> None:
    requests.post(f"{simulator.url}/_sim/faults", json=spec, timeout=5).raise_for_status()


def test_a_login_code_buys_tokens_once_and_they_never_print(gog_settings):
    user_id = gog_user_id_for(20, seed=31)
    auth = GogAuth(gog_settings)
    code = login(gog_settings, user_id)
    tokens = auth.exchange_code(code)
    assert tokens.user_id == user_id and tokens.fresh()
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)
    with pytest.raises(GogLoginRejected) as rejected:
        auth.exchange_code(code)
    assert code not in str(rejected.value) and rejected.value.code == "gog_login_rejected"
    with pytest.raises(GogLoginRejected):
        auth.exchange_code(login(gog_settings, user_id), redirect_uri="https://other.example/")
    assert auth.api_calls == 3


def test_refresh_rotates_and_a_refused_refresh_means_relink(gog_settings, simulator):
    user_id = gog_user_id_for(20, seed=32)
    auth = GogAuth(gog_settings)
    first = auth.exchange_code(login(gog_settings, user_id))
    second = auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token and second.user_id == user_id
    with pytest.raises(RelinkRequired):
        auth.refresh(first.refresh_token)  # spent
    requests.post(f"{simulator.url}/_sim/gog/revoke/{user_id}", timeout=5).raise_for_status()
    with pytest.raises(RelinkRequired) as refused:
        auth.refresh(second.refresh_token)
    assert second.refresh_token not in str(refused.value)


def test_the_library_endpoints(gog_settings, simulator):
    user_id = gog_user_id_for(250, seed=33)
    tokens = GogAuth(gog_settings).exchange_code(login(gog_settings, user_id))
    library = GogLibrary(gog_settings, tokens.access_token)
    user = library.user()
    assert (user.user_id, user.username) == (user_id, f"sim_{user_id}") and user.games_checksum
    owned = library.owned_ids()
    assert len(owned) == 250 and owned == sorted(owned)
    first = library.products_page(1)
    assert first.total_pages == 3 and len(first.products) == 100
    products = [p for n in range(1, 4) for p in library.products_page(n).products]
    assert {p["id"] for p in products} <= set(owned)
    stats = library.stats_page(user.username, 1)
    assert stats is not None and stats.items and stats.pages >= 1
    assert library.api_calls == 7

    private = gog_user_id_for(20, GogKind.PRIVATE_STATS, seed=34)
    private_tokens = GogAuth(gog_settings).exchange_code(login(gog_settings, private))
    assert (
        GogLibrary(gog_settings, private_tokens.access_token).stats_page(f"sim_{private}", 1)
        is None
    )

    requests.post(f"{simulator.url}/_sim/gog/expire-access", timeout=5).raise_for_status()
    with pytest.raises(GogUnauthorized) as expired:
        library.user()
    assert tokens.access_token not in str(expired.value)


def test_failures_map_to_our_errors(gog_settings, simulator):
    user_id = gog_user_id_for(20, seed=35)
    tokens = GogAuth(gog_settings).exchange_code(login(gog_settings, user_id))
    library = GogLibrary(gog_settings, tokens.access_token)
    for spec, error in (
        ({"kind": "status", "status": 503}, GogUnavailable),
        ({"kind": "html"}, GogBadResponse),
        ({"kind": "truncate"}, GogBadResponse),
    ):
        fault(simulator, match="gog_owned", **spec)
        with pytest.raises(error) as raised:
            library.owned_ids()
        told = "".join(traceback.format_exception(raised.value))
        assert tokens.access_token not in told and raised.value.__cause__ is None


def test_a_429_backs_the_gog_bucket_off_and_honours_retry_after(gog_settings, simulator, runtime):
    """Through the shared limiter: the 429 pauses `gog_api` for everyone for Retry-After
    seconds, then the call goes through."""
    user_id = gog_user_id_for(20, seed=36)
    limiter = RateLimiter.from_settings(runtime.redis, gog_settings, max_wait_s=None)
    tokens = GogAuth(gog_settings, gate=limiter).exchange_code(login(gog_settings, user_id))
    library = GogLibrary(gog_settings, tokens.access_token, gate=limiter)
    fault(simulator, match="gog_products", kind="status", status=429, retry_after=1)
    started = time.monotonic()
    assert library.products_page(1).products
    assert 0.9 <= time.monotonic() - started < 5
    assert library.api_calls == 2  # the 429, then the call that went through
    assert runtime.redis.zcard("sync:ratelimit:gog_api:window") == 3  # the grant too
