"""One attempt at a GOG library: ownership from one call, titles page by page, playtime
from the profile's stats, newest session first.

1. A usable access token (`gog_tokens`: refreshed once, committed before use).
2. `userData.json` (the owned list's checksum) and `/user/data/games` (the truth of
   what is owned: games, DLC, delisted products); the movies' list, which is not stored.
3. The stats pages, newest session first, up to the first game whose last session is
   older than the last successful sync (all of them on a first sync); a private profile
   keeps the playtimes stored.
4. When the checksum is the one the last completed sync stored, no product page is read:
   only the games played since are written (3 calls for an unchanged library nobody
   played). Otherwise `getFilteredProducts` page by page, hidden products included; each
   page is one batch, committed with the checkpoint (`resume_after` = the last page
   written), so a killed worker's rerun resumes at the next page. Pages shift when the
   library changes between two calls: a product seen twice is written once (the second
   write finds it unchanged), and an owned product seen on no page is still written, as
   owned, its stored title kept (or filled by the next sync).
5. Removals from the owned list, the checksum saved with the completion.

GOG's sparse 10-digit ids make Steam's slices useless (one product each); GOG needs none:
its own checksum says whether anything changed, and the writer's probe drops the rows a
changed library did not change.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from ..errors import ConfigurationError, GogUnauthorized
from ..platforms import OwnedGame
from ..platforms.gog import GogAuth, GogLibrary, GogUser
from ..store import credentials, digests, runs, writer
from ..vault import Vault
from .engine import Run
from .gog_tokens import access_token
from .outcome import SyncOutcome

PLATFORM = "gog"
SESSION_MARGIN = timedelta(minutes=10)


class GogRun(Run):
    """A GOG library's sync attempt (see the module's docstring)."""

    def _work(self) -> SyncOutcome:
        settings = self.engine.settings
        if self.engine.gate is None:
            raise ConfigurationError("A GOG sync needs the rate limiter (the engine's gate).")
        auth = GogAuth(settings, gate=self.engine.gate)
        try:
            token = access_token(
                self.engine.pool, Vault.from_settings(settings), auth, self.library_id
            )
        finally:
            self.unrecorded_calls += auth.api_calls
        gog = GogLibrary(settings, token, gate=self.engine.gate)
        self._counted = 0  # of gog's calls, those already in unrecorded_calls or the run row
        try:
            return self._sync(gog)
        except GogUnauthorized:
            # Revoked, or expired early: the retry refreshes first (and a refused refresh
            # is relink_required, never a retry loop on a dead token).
            with self.engine.pool.connection() as conn:
                credentials.expire_access(conn, self.library_id)
            raise
        finally:
            self.unrecorded_calls += self._calls(gog)

    def _calls(self, gog: GogLibrary) -> int:
        """GOG's library calls not yet counted (each batch records them with its rows)."""
        fresh = gog.api_calls - self._counted
        self._counted = gog.api_calls
        return fresh

    def _sync(self, gog: GogLibrary) -> SyncOutcome:
        user = gog.user()
        owned = {str(p) for p in gog.owned_ids()}
        played = self._played_since(gog, user)
        checksum = (user.games_checksum or "").encode() or None
        unchanged = (
            self.engine.settings.sync_differential
            and checksum is not None
            and checksum == self.digests.answer
            and self.run.resume_after is None
        )
        self._check_interrupts()
        if unchanged:
            self.total_games = self.library.total_games
            return self._completed(*self._played_only(gog, played), same_answer=True)
        return self._completed(*self._pages(gog, owned, played, checksum), same_answer=False)

    # -- playtime -----------------------------------------------------------------

    def _played_since(self, gog: GogLibrary, user: GogUser) -> dict[str, dict[str, Any]]:
        """{product id: its stats} for the games played since the last successful sync
        (every played game on a first sync); empty for a private profile."""
        # SYNC_DIFFERENTIAL=false reads every session, as a first sync does.
        differential = self.engine.settings.sync_differential
        last_success = self.library.last_success_at if differential else None
        # A margin for GOG's clock and second-rounded sessions: a game read again is
        # dropped by the writer's probe, a game missed would wait for its next session.
        since = last_success - SESSION_MARGIN if last_success is not None else None
        played: dict[str, dict[str, Any]] = {}
        page, pages = 1, 1
        while page <= pages:
            stats = gog.stats_page(user.username, page)
            if stats is None:
                return {}
            pages = stats.pages
            for item in stats.items:
                game = item.get("game") or {}
                stat = (item.get("stats") or {}).get(user.user_id)
                if not isinstance(stat, dict) or "id" not in game:
                    continue
                last = _time(stat.get("lastSession"))
                if since is not None and last is not None and last < since:
                    return played  # older than the last success: nothing new beyond
                played[str(game["id"])] = {
                    "playtime": int(stat.get("playtime") or 0),
                    "lastSession": stat.get("lastSession"),
                }
            page += 1
        return played

    def _played_only(
        self, gog: GogLibrary, played: dict[str, dict[str, Any]]
    ) -> tuple[int, runs.RunTotals]:
        """Nothing bought or removed: write the games played since, keep the rest."""
        with self._fenced() as conn:
            stored = writer.stored_games(conn, self.library_id, PLATFORM, sorted(played))
            games = [
                _game(game_id, None, played[game_id], stored.get(game_id))
                for game_id in sorted(stored)
            ]
            counts = writer.write_batch(conn, self.library_id, PLATFORM, games)
            runs.record_batch(
                conn,
                self.run.run_id,
                resume_after=0,
                games_processed=self.total_games or 0,
                new=counts.new,
                updated=counts.updated,
                api_calls=self.unrecorded_calls + self._calls(gog),
            )
            self.unrecorded_calls = 0
            return self._finish_gog(conn, None, self.digests.answer)

    # -- pages --------------------------------------------------------------------

    def _pages(
        self,
        gog: GogLibrary,
        owned: set[str],
        played: dict[str, dict[str, Any]],
        checksum: bytes | None,
    ) -> tuple[int, runs.RunTotals]:
        """Every products page from the checkpoint on, one batch each; then the owned
        products seen on no page; then removals and completion."""
        movies = {str(p) for p in gog.movie_ids()}  # owned, and not games: never stored
        page, pages = (self.run.resume_after or 0) + 1, None
        while pages is None or page <= pages:
            found = gog.products_page(page)
            pages = found.total_pages
            on_page = [p for p in found.products if str(p["id"]) in owned and not p.get("isMovie")]
            self._write_page(gog, page, on_page, played, total=len(owned - movies))
            page += 1
            if page <= pages:
                self._check_interrupts()
        self.total_games = len(owned - movies)
        with self._fenced() as conn:
            stored = writer.owned_game_ids(conn, self.library_id, PLATFORM)
            unseen = sorted(owned - movies - stored)  # owned, on no page: still owned
            known = writer.stored_games(conn, self.library_id, PLATFORM, unseen)
            games = [_game(i, None, played.get(i), known.get(i)) for i in unseen]
            counts = writer.write_batch(conn, self.library_id, PLATFORM, games)
            runs.record_batch(
                conn,
                self.run.run_id,
                resume_after=pages,
                games_processed=self.total_games,
                new=counts.new,
                updated=counts.updated,
                api_calls=self.unrecorded_calls + self._calls(gog),
            )
            self.unrecorded_calls = 0
            # An empty list for a library we hold games for is more likely GOG's hiccup than
            # a user who lost everything: keep the games (as for Steam, docs/behaviour.md).
            removed = (
                writer.mark_removed(conn, self.library_id, PLATFORM, sorted(owned - movies))
                if owned - movies or not stored
                else 0
            )
            return self._finish_gog(conn, removed, checksum)

    def _write_page(
        self,
        gog: GogLibrary,
        page: int,
        products: list[dict[str, Any]],
        played: dict[str, dict[str, Any]],
        *,
        total: int,
    ) -> None:
        """One page as one batch, committed with the checkpoint."""
        ids = sorted({str(p["id"]) for p in products})
        with self._fenced() as conn:
            stored = writer.stored_games(conn, self.library_id, PLATFORM, ids)
            by_id = {str(p["id"]): p for p in products}
            games = [_game(i, by_id[i], played.get(i), stored.get(i)) for i in ids]
            counts = writer.write_batch(conn, self.library_id, PLATFORM, games)
            writer.record_types(
                conn, PLATFORM, {i: "game" if by_id[i].get("isGame") else "dlc" for i in ids}
            )
            self.games_processed = min(self.games_processed + len(games), total)
            runs.record_batch(
                conn,
                self.run.run_id,
                resume_after=page,
                games_processed=self.games_processed,
                new=counts.new,
                updated=counts.updated,
                api_calls=self.unrecorded_calls + self._calls(gog),
            )
            self.unrecorded_calls = 0
        self.progress.batch(
            self.games_processed,
            total,
            current_game=products[-1].get("title") if products else None,
            started_at=self.started_at,
        )
        if self.engine.after_batch is not None:
            self.engine.after_batch(self.library_id, page)

    def _finish_gog(
        self, conn: Any, removed: int | None, checksum: bytes | None
    ) -> tuple[int, runs.RunTotals]:
        """Close the run as completed, in the caller's fenced transaction, keeping the
        checksum it read (the next sync skips the pages while it holds)."""
        digests.save_digests(conn, self.library_id, {}, checksum)
        totals = runs.finish_run(
            conn,
            self.library_id,
            self.run.run_id,
            "completed",
            total_games=self.total_games or 0,
            removed_games=removed or 0,
        )
        return removed or 0, totals


def _game(
    game_id: str,
    product: dict[str, Any] | None,
    stat: dict[str, Any] | None,
    stored: writer.StoredGame | None,
) -> OwnedGame:
    """A product as stored: what this sync read, else what was stored before."""
    raw: dict[str, Any] = dict(stored.raw_data) if stored is not None else {}
    if product is not None:
        raw["product"] = product
    if stat is not None:
        raw["stats"] = stat
    product = raw.get("product") or {}
    image = product.get("image")
    minutes = stat["playtime"] if stat else (stored.playtime_minutes if stored else 0)
    last = _time(stat["lastSession"]) if stat else (stored.last_played_at if stored else None)
    return OwnedGame(
        platform_game_id=game_id,
        title=product.get("title") or None,
        icon_url=f"https:{image}.jpg"
        if isinstance(image, str) and image.startswith("//")
        else None,
        playtime_minutes=minutes,
        playtime_2weeks_minutes=0,  # GOG does not say
        last_played_at=last,
        raw_json=json.dumps(raw, ensure_ascii=False, sort_keys=True).encode(),
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
