"""The GOG adapter: OAuth grants and the library endpoints (see ../shared/design/GOG_API.md).

GOG has no public API for libraries; these are the endpoints its Galaxy client and every
open-source client (Lutris, Heroic, Playnite, lgogdownloader) use. Every call goes
through the global limiter's `gog_api` bucket (GOG publishes no limit; a 429 backs every
worker off, honouring Retry-After). Tokens travel in a header, never in a URL, and never
appear in an error: `GogTokens` does not print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ..errors import (
    GogBadResponse,
    GogLoginRejected,
    GogRateLimited,
    GogRefused,
    GogResponseTooLarge,
    GogTimeout,
    GogUnauthorized,
    GogUnavailable,
    RelinkRequired,
)
from ..settings import Settings
from .http import CallGate, PlatformErrors, PlatformHttp, retry_after_s

#: The Galaxy client's OAuth credentials: public, and used by every open-source client.
CLIENT_ID = "46899977096215655"
CLIENT_SECRET = "9d85c43b1482497dbbce61f6e4aa173a433796eeae2ca8c5f6129f2dc4de46d9"  # noqa: S105
#: The redirect the open-source clients register (the login page ends there, code in the URL).
REDIRECT_URI = "https://embed.gog.com/on_login_success?origin=client"
BUCKET = "gog_api"
REFRESH_MARGIN = timedelta(minutes=5)  # an access token this close to expiry is refreshed


def login_url(settings: Settings, redirect_uri: str = REDIRECT_URI) -> str:
    """Where the user logs in to GOG (in a browser: GOG may ask for a CAPTCHA or 2FA)."""
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "layout": "client2",
        }
    )
    return f"{settings.gog_auth_base_url.rstrip('/')}/auth?{query}"


@dataclass(frozen=True)
class GogTokens:
    """A token pair as GOG granted it (the tokens are left out of repr: never printed)."""

    user_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime

    def fresh(self) -> bool:
        """Whether the access token is good for a while yet."""
        return is_fresh(self.expires_at)


def is_fresh(expires_at: datetime) -> bool:
    """Whether an access token expiring then is good for a while yet (else: refresh it)."""
    return expires_at - REFRESH_MARGIN > datetime.now(UTC)


@dataclass(frozen=True)
class GogUser:
    """Who the tokens belong to, and the digest of what they own."""

    user_id: str
    username: str
    games_checksum: str | None  # changes when the owned list changes


@dataclass(frozen=True)
class ProductsPage:
    """One page of `getFilteredProducts`."""

    page: int
    total_pages: int
    products: list[dict[str, Any]]


@dataclass(frozen=True)
class StatsPage:
    """One page of a profile's play stats, most recent session first."""

    page: int
    pages: int
    items: list[dict[str, Any]]


def _gog_status(status: int, retry_after: str, body: bytes, what: str) -> None:
    if status == 429:
        raise GogRateLimited(retry_after_s=retry_after_s(retry_after))
    if status == 401:
        raise GogUnauthorized()
    if status in (400, 403, 404):
        raise GogRefused(f"GOG refused {what} (HTTP {status}).")
    raise GogUnavailable(f"GOG answered {what} with HTTP {status}.")


GOG_ERRORS = PlatformErrors(
    name="GOG",
    unavailable=GogUnavailable,
    timeout=GogTimeout,
    bad_response=GogBadResponse,
    rate_limited=GogRateLimited,
    too_large=GogResponseTooLarge,
    for_status=_gog_status,
)


class GogAuth:
    """The token endpoint: a login code or a refresh token for a new token pair."""

    def __init__(self, settings: Settings, gate: CallGate | None = None) -> None:
        self._http = PlatformHttp(
            settings, settings.gog_auth_base_url, BUCKET, gate, errors=GOG_ERRORS
        )

    @property
    def api_calls(self) -> int:
        """Calls made so far."""
        return self._http.calls

    def exchange_code(self, code: str, redirect_uri: str = REDIRECT_URI) -> GogTokens:
        """The tokens a login code stands for (GogLoginRejected when GOG refuses it)."""
        try:
            return self._grant(
                {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
            )
        except GogRefused:
            raise GogLoginRejected() from None

    def refresh(self, refresh_token: str) -> GogTokens:
        """A new pair for a refresh token, which GOG then spends (RelinkRequired when refused)."""
        try:
            return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})
        except (GogRefused, GogUnauthorized):
            raise RelinkRequired() from None

    def _grant(self, grant: dict[str, str]) -> GogTokens:
        params = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **grant}
        answer = self._http.get("/token", params, "token grant")
        try:
            return GogTokens(
                user_id=str(answer["user_id"]),
                access_token=str(answer["access_token"]),
                refresh_token=str(answer["refresh_token"]),
                expires_at=datetime.now(UTC) + timedelta(seconds=int(answer["expires_in"])),
            )
        except (KeyError, TypeError, ValueError):
            raise GogBadResponse("GOG's token grant lacked a token or its lifetime.") from None


class GogLibrary:
    """The library endpoints, with one access token."""

    def __init__(self, settings: Settings, access_token: str, gate: CallGate | None = None) -> None:
        self._embed = PlatformHttp(
            settings, settings.gog_embed_base_url, BUCKET, gate, errors=GOG_ERRORS
        )
        self._www = PlatformHttp(
            settings, settings.gog_www_base_url, BUCKET, gate, errors=GOG_ERRORS
        )
        self._headers = {"Authorization": f"Bearer {access_token}"}

    @property
    def api_calls(self) -> int:
        """Calls made so far."""
        return self._embed.calls + self._www.calls

    def user(self) -> GogUser:
        """`userData.json`: the user id, the username and the owned games' checksum."""
        data = self._embed.get("/userData.json", {}, "userData.json", self._headers)
        if not data.get("isLoggedIn", True) or not data.get("userId"):
            raise GogUnauthorized()
        checksum = data.get("checksum")
        games = checksum.get("games") if isinstance(checksum, dict) else None
        return GogUser(
            user_id=str(data["userId"]),
            username=str(data.get("username") or ""),
            games_checksum=str(games) if games is not None else None,
        )

    def owned_ids(self) -> list[int]:
        """Every owned product id (games, DLC, movies, delisted): the truth of ownership."""
        data = self._embed.get("/user/data/games", {}, "owned games", self._headers)
        owned = data.get("owned")
        if not isinstance(owned, list):
            raise GogBadResponse("GOG's owned games answer has no `owned` list.")
        return sorted({int(p) for p in owned if isinstance(p, int | str) and str(p).isdigit()})

    def products_page(self, page: int) -> ProductsPage:
        """A page of game metadata, hidden products included (movies are another list)."""
        data = self._embed.get(
            "/account/getFilteredProducts",
            {"mediaType": 1, "hiddenFlag": 1, "page": page},
            f"products page {page}",
            self._headers,
        )
        products = data.get("products")
        if not isinstance(products, list):
            raise GogBadResponse(f"GOG's products page {page} has no `products` list.")
        return ProductsPage(
            page=int(data.get("page") or page),
            total_pages=max(1, int(data.get("totalPages") or 1)),
            products=[p for p in products if isinstance(p, dict) and isinstance(p.get("id"), int)],
        )

    def movie_ids(self) -> set[int]:
        """The owned movies (`mediaType=2`, every page): owned products that are no games."""
        movies: set[int] = set()
        page, pages = 1, 1
        while page <= pages:
            data = self._embed.get(
                "/account/getFilteredProducts",
                {"mediaType": 2, "hiddenFlag": 1, "page": page},
                f"movies page {page}",
                self._headers,
            )
            pages = max(1, int(data.get("totalPages") or 1))
            products = data.get("products")
            listed = products if isinstance(products, list) else []
            movies |= {
                p["id"] for p in listed if isinstance(p, dict) and isinstance(p.get("id"), int)
            }
            page += 1
        return movies

    def stats_page(self, username: str, page: int) -> StatsPage | None:
        """A page of play stats, most recent session first; None when the profile is private."""
        try:
            data = self._www.get(
                f"/u/{username}/games/stats",
                {"sort": "recent_playtime", "order": "desc", "page": page},
                f"play stats page {page}",
                self._headers,
            )
        except GogRefused:
            return None
        embedded = data.get("_embedded")
        items = embedded.get("items") if isinstance(embedded, dict) else None
        return StatsPage(
            page=int(data.get("page") or page),
            pages=max(1, int(data.get("pages") or 1)),
            items=[i for i in items or [] if isinstance(i, dict)],
        )
