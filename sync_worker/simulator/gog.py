"""GOG beside Steam in the simulator: OAuth, the library endpoints and profile stats.

Every account is named by its user id, `48628` + 10 digits read as `SSS K NNNNNN`: seed
S (which products), kind K (see `GogKind`) and the product count N, so every valid id is
a deterministic account. Its username (for the stats URL) is `sim_<user id>`. Product
ids are sparse 10-digit numbers, as GOG's are.

Quirks reproduced (docs/simulator.md): a login page that redirects with a short-lived,
single-use code; single-use, rotating refresh tokens; access tokens that expire (401)
and accounts that get revoked (refresh refused with `invalid_grant`); a `checksum.games`
that changes with the owned list; `getFilteredProducts` pages of 100 sorted by title
and computed on every call (a purchase between two calls shifts them), a missing
`releaseDate`, protocol-relative images, movies mixed in, hidden products listed only
with `hiddenFlag=1`, owned products on no page (delisted); stats newest session first,
private or missing for some accounts.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..platforms.gog import CLIENT_ID, CLIENT_SECRET
from . import catalog

USER_PREFIX = "48628"
CODE_TTL_S = 60.0
ACCESS_TTL_S = 3600
PRODUCTS_PER_PAGE = 100
STATS_PER_PAGE = 50
_FIRST_PRODUCT, _PRODUCT_SPACING = 1_000_000_000, 5_003  # sparse ids, as GOG's
MAX_PRODUCTS = 999_999


class GogKind(enum.IntEnum):
    """What the simulated GOG account shows."""

    PUBLIC = 0
    PRIVATE_STATS = 1  # the profile's stats page is private: 403
    NO_STATS = 2  # the stats page answers, with no stats for any game


@dataclass(frozen=True)
class GogAccount:
    """The account a simulated GOG user id stands for."""

    user_id: str
    seed: int
    kind: GogKind
    product_count: int

    @property
    def username(self) -> str:
        """The name in the profile URL (`/u/<username>/games/stats`)."""
        return f"sim_{self.user_id}"


def gog_user_id_for(products: int, kind: GogKind = GogKind.PUBLIC, seed: int = 0) -> str:
    """The user id of a simulated GOG account owning that many products."""
    if not 0 <= products <= MAX_PRODUCTS or not 0 <= seed <= 999:
        raise ValueError(f"products must be 0-{MAX_PRODUCTS} and seed 0-999")
    return f"{USER_PREFIX}{seed:03d}{int(kind)}{products:06d}"


def parse_account(user_id: str) -> GogAccount | None:
    """The account behind a user id (or a `sim_<user id>` username), None if it is not one."""
    user_id = user_id.removeprefix("sim_")
    if len(user_id) != 15 or not user_id.isdigit() or not user_id.startswith(USER_PREFIX):
        return None
    kind = int(user_id[8])
    return GogAccount(
        user_id=user_id,
        seed=int(user_id[5:8]),
        kind=GogKind(kind) if kind in {k.value for k in GogKind} else GogKind.PUBLIC,
        product_count=int(user_id[9:]),
    )


def product_id_at(index: int, seed: int) -> int:
    """The product id of an account's index-th product (distinct for distinct indexes)."""
    return _FIRST_PRODUCT + _PRODUCT_SPACING * ((index * 7_919 + seed * 104_729) % 200_000)


def _k(product_id: int) -> int:
    return (product_id - _FIRST_PRODUCT) // _PRODUCT_SPACING


def is_movie(product_id: int) -> bool:
    """Movies are owned products too; they come mixed into the games' pages."""
    return _k(product_id) % 97 == 5


def is_hidden(product_id: int) -> bool:
    """Hidden by the user: listed only with `hiddenFlag=1`."""
    return _k(product_id) % 31 == 3


def is_delisted(product_id: int) -> bool:
    """Owned, but on no page of `getFilteredProducts`."""
    return _k(product_id) % 53 == 7


def is_dlc(product_id: int) -> bool:
    """A DLC: `isGame` false, category "DLC"."""
    return _k(product_id) % 9 == 4


def product(product_id: int) -> dict[str, Any]:
    """One `getFilteredProducts` entry."""
    k = _k(product_id)
    title = catalog.game_name(10 * (k + 1))
    entry: dict[str, Any] = {
        "isGalaxyCompatible": k % 3 != 0,
        "tags": [],
        "id": product_id,
        "availability": {"isAvailable": True, "isAvailableInAccount": True},
        "title": title,
        "image": f"//images-{k % 4 + 1}.gog.com/{hashlib.sha1(str(k).encode()).hexdigest()}",  # noqa: S324
        "url": f"/game/{title.lower().replace(' ', '_')}",
        "worksOn": {"Windows": True, "Mac": k % 2 == 0, "Linux": k % 5 == 0},
        "category": "Movie"
        if is_movie(product_id)
        else "DLC"
        if is_dlc(product_id)
        else "Adventure",
        "rating": k % 50,
        "isComingSoon": False,
        "isMovie": is_movie(product_id),
        "isGame": not is_movie(product_id) and not is_dlc(product_id),
        "slug": title.lower().replace(" ", "_"),
        "updates": k % 4,
        "isNew": False,
        "dlcCount": 0,
        "isHidden": is_hidden(product_id),
    }
    if k % 7 != 0:  # some products have no release date at all
        entry["releaseDate"] = {
            "date": f"20{10 + k % 15}-0{1 + k % 9}-1{k % 10} 00:00:00.000000",
            "timezone_type": 3,
            "timezone": "Europe/Warsaw",
        }
    return entry


def stats_of(account: GogAccount, product_id: int, bonus: int) -> dict[str, Any] | None:
    """The account's playtime (minutes) and last session of a product; None if never played."""
    k = _k(product_id)
    played = (k + account.seed) % 10 < 7 or bonus > 0
    if not played or is_movie(product_id) or is_dlc(product_id):
        return None
    last = catalog.NOW - ((k * 7_919 + account.seed) % 5_000) * 3_600
    if bonus:
        last = int(time.time())  # played just now (the catalog's own sessions are from 2025)
    return {
        "playtime": 1 + (k * 31 + account.seed) % 6_000 + bonus,
        "lastSession": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(last)),
    }


def _listed(product_id: int, *, movies: bool) -> bool:
    """On the pages of `mediaType=2` (movies) or `mediaType=1`, where some movies show up too."""
    if is_delisted(product_id):
        return False
    if movies:
        return is_movie(product_id)
    return not is_movie(product_id) or product_id % 2 == 1


def _page(
    listing: list[dict[str, Any]], query: dict[str, str], per_page: int
) -> tuple[int, int, list[dict[str, Any]]]:
    """(the page asked for, how many pages, its entries) of a whole list."""
    page = max(1, int(query.get("page", "1") or 1))
    start = (page - 1) * per_page
    return page, max(1, math.ceil(len(listing) / per_page)), listing[start : start + per_page]


@dataclass
class _Changes:
    added: list[int] = field(default_factory=list)
    removed: set[int] = field(default_factory=set)
    playtime_bonus: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """What the server sends."""

    status: int
    body: str
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(payload: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False))


def _error(status: int, error: str, description: str) -> Answer:
    return _json({"error": error, "error_description": description}, status)


class GogState:
    """Codes, tokens, revoked accounts and library changes; shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every code, token, revocation and change."""
        with self.lock:
            self._codes: dict[str, tuple[str, str, float]] = {}  # code -> user, redirect, expiry
            self._access: dict[str, tuple[str, float]] = {}  # token -> user, expiry
            self._refresh: dict[str, str] = {}  # live refresh token -> user
            self._revoked: set[str] = set()
            self._changes: dict[str, _Changes] = {}
            self._listings: dict[tuple[str, str], list[dict[str, Any]]] = {}
            self.refreshes = 0

    # -- admin -----------------------------------------------------------------------

    def change_library(self, user_id: str, body: dict[str, Any]) -> None:
        """Add or remove products, or add minutes of play (a new session, now)."""
        with self.lock:
            self._listings = {k: v for k, v in self._listings.items() if k[0] != user_id}
            changes = self._changes.setdefault(user_id, _Changes())
            for pid in body.get("remove", []):
                changes.removed.add(int(pid))
                if int(pid) in changes.added:
                    changes.added.remove(int(pid))
            for pid in body.get("add", []):
                changes.removed.discard(int(pid))
                if int(pid) not in changes.added:
                    changes.added.append(int(pid))
            for pid, minutes in body.get("bump_playtime", {}).items():
                changes.playtime_bonus[int(pid)] = changes.playtime_bonus.get(int(pid), 0) + int(
                    minutes
                )

    def revoke(self, user_id: str) -> None:
        """The user revoked the app: every token of the account stops working."""
        with self.lock:
            self._revoked.add(user_id)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on."""
        with self.lock:
            self._access = {t: (u, 0.0) for t, (u, _) in self._access.items()}

    # -- the account's data ----------------------------------------------------------

    def owned(self, account: GogAccount) -> list[int]:
        """Every owned product id (games, DLC, movies, delisted), in purchase order."""
        with self.lock:
            changes = self._changes.get(account.user_id, _Changes())
            removed, added = set(changes.removed), list(changes.added)
        ids = [product_id_at(i, account.seed) for i in range(account.product_count)]
        return [p for p in ids if p not in removed] + [p for p in added if p not in ids]

    # -- OAuth -----------------------------------------------------------------------

    def login(self, query: dict[str, str]) -> Answer:
        """The login page; with `login=<user id>` (the form submitted), the redirect."""
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID or not redirect:
            return Answer(400, "<html><body>Invalid client</body></html>", "text/html")
        user_id = query.get("login")
        if user_id is None or parse_account(user_id) is None:
            hidden = "".join(
                f'<input type="hidden" name="{k}" value="{v}">'
                for k, v in query.items()
                if k != "login"
            )
            form = (
                '<html><body><form method="get" action="/auth">'
                f'{hidden}<label>GOG user id <input name="login"></label>'
                '<button type="submit">Log in</button></form></body></html>'
            )
            return Answer(200, form, "text/html")
        code = f"code-{secrets.token_urlsafe(24)}"
        with self.lock:
            self._revoked.discard(user_id)  # logging in again grants access again
            self._codes[code] = (user_id, redirect, time.monotonic() + CODE_TTL_S)
        separator = "&" if "?" in redirect else "?"
        location = f"{redirect}{separator}{urlencode({'code': code})}"
        return Answer(302, "", "text/html", {"Location": location})

    def token(self, query: dict[str, str]) -> Answer:
        """Code or refresh grant: a new access token and a new (single-use) refresh token."""
        if query.get("client_id") != CLIENT_ID or query.get("client_secret") != CLIENT_SECRET:
            return _error(401, "invalid_client", "The client credentials are invalid")
        grant = query.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                found = self._codes.pop(query.get("code", ""), None)
                if found is None or found[2] < time.monotonic():
                    return _error(400, "invalid_grant", "The authorization code is invalid")
                user_id, redirect, _ = found
                if query.get("redirect_uri") != redirect:
                    return _error(400, "invalid_grant", "The redirect URI does not match")
            elif grant == "refresh_token":
                user_id = self._refresh.pop(query.get("refresh_token", ""), "")
                if not user_id or user_id in self._revoked:
                    return _error(400, "invalid_grant", "The refresh token is invalid")
                self.refreshes += 1
            else:
                return _error(400, "unsupported_grant_type", "Unknown grant type")
            if user_id in self._revoked:
                return _error(400, "invalid_grant", "The account revoked this client")
            access, refresh = f"acc-{secrets.token_urlsafe(24)}", f"ref-{secrets.token_urlsafe(24)}"
            self._access[access] = (user_id, time.monotonic() + ACCESS_TTL_S)
            self._refresh[refresh] = user_id
        return _json(
            {
                "expires_in": ACCESS_TTL_S,
                "scope": "",
                "token_type": "bearer",
                "access_token": access,
                "user_id": user_id,
                "refresh_token": refresh,
                "session_id": secrets.token_hex(8),
            }
        )

    def account_of(self, authorization: str | None) -> GogAccount | None:
        """The account a live bearer token belongs to, or None (401)."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self.lock:
            user_id, expires = self._access.get(token, ("", 0.0))
            if not user_id or expires < time.monotonic() or user_id in self._revoked:
                return None
        return parse_account(user_id)

    # -- library endpoints -----------------------------------------------------------

    def user_data(self, account: GogAccount) -> Answer:
        owned = sorted(self.owned(account))
        checksum = hashlib.md5(",".join(map(str, owned)).encode()).hexdigest()  # noqa: S324
        return _json(
            {
                "country": "PL",
                "currencies": [{"code": "EUR", "symbol": "€"}],
                "userId": account.user_id,
                "username": account.username,
                "galaxyUserId": account.user_id,
                "email": f"{account.username}@example.com",
                "avatar": "//images.gog.com/avatar",
                "isLoggedIn": True,
                "checksum": {"cart": None, "games": checksum, "wishlist": None},
                "updates": {"products": 0},
            }
        )

    def owned_ids(self, account: GogAccount) -> Answer:
        return _json({"owned": self.owned(account)})

    def products(self, account: GogAccount, query: dict[str, str]) -> Answer:
        """A page of metadata, recomputed on every call (a change shifts the pages)."""
        movies = query.get("mediaType") == "2"
        hidden = query.get("hiddenFlag") == "1"
        listed = self._listing(account, f"products {movies} {hidden}", movies, hidden)
        page, pages, products = _page(listed, query, PRODUCTS_PER_PAGE)
        return _json(
            {
                "sortBy": None,
                "page": page,
                "totalProducts": len(listed),
                "totalPages": pages,
                "productsPerPage": PRODUCTS_PER_PAGE,
                "contentSystemCompatibility": None,
                "movies": [],
                "tags": [],
                "products": products,
                "updatedProductsCount": 0,
                "hiddenUpdatedProductsCount": 0,
                "appliedFilters": {"tags": None},
                "hasHiddenProducts": any(e["isHidden"] for e in listed),
            }
        )

    def _listing(
        self, account: GogAccount, name: str, movies: bool, hidden: bool
    ) -> list[dict[str, Any]]:
        """A whole list, in its order, as every page of it is cut from: computed once per
        state of the account (a benchmark times the service, not the simulator)."""
        key = (account.user_id, name)
        with self.lock:
            cached = self._listings.get(key)
        if cached is not None:
            return cached
        if name == "stats":
            listing = self._played(account)
        else:
            listing = [product(p) for p in self.owned(account) if _listed(p, movies=movies)]
            listing = [e for e in listing if hidden or not e["isHidden"]]
            listing.sort(key=lambda e: (e["title"], e["id"]))
        with self.lock:
            self._listings[key] = listing
        return listing

    def stats_for(self, account: GogAccount, product_id: int) -> dict[str, Any] | None:
        """A product's stats as the account's profile shows them: a product bought since
        the account was made has only the sessions played since (none, or a bonus)."""
        with self.lock:
            changes = self._changes.get(account.user_id, _Changes())
            bonus = changes.playtime_bonus.get(product_id, 0)
            bought_since = product_id in changes.added
        if account.kind is GogKind.NO_STATS or (bought_since and not bonus):
            return None
        return stats_of(account, product_id, bonus)

    def _played(self, account: GogAccount) -> list[dict[str, Any]]:
        """Every played game with its stats, most recent session first."""
        played = []
        for p in self.owned(account):
            stat = self.stats_for(account, p)
            if stat is not None:
                entry = product(p)
                played.append(
                    {
                        "game": {"id": str(p), "title": entry["title"], "url": entry["url"]},
                        "stats": {account.user_id: stat},
                    }
                )
        played.sort(key=lambda i: i["stats"][account.user_id]["lastSession"], reverse=True)
        return played

    def stats(self, account: GogAccount, query: dict[str, str]) -> Answer:
        """The profile's games with play time, most recent session first, paged."""
        if account.kind is GogKind.PRIVATE_STATS:
            return _json({"error": "profile_is_private"}, 403)
        played = self._listing(account, "stats", False, False)
        page, pages, items = _page(played, query, STATS_PER_PAGE)
        return _json(
            {
                "page": page,
                "limit": STATS_PER_PAGE,
                "pages": pages,
                "total": len(played),
                "_embedded": {"items": items},
            }
        )
