"""The sync engine: one library, fetched once, written in checkpointed batches.

Plain synchronous Python (no Dramatiq): the actor, the CLI and the tests drive it alike.
Order per batch: write in one transaction -> advance checkpoint -> publish progress ->
after-batch hook (cancellation, tests) -> renew lease. A crash anywhere leaves a
checkpoint at the last committed batch; the rerun continues the same `sync_runs` row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import redis
import structlog
from psycopg_pool import ConnectionPool

from .. import keys
from ..errors import (
    DatabaseUnavailable,
    PrivateProfile,
    RateLimitDeferred,
    RedisUnavailable,
    SyncAlreadyRunning,
    SyncCancelled,
    SyncWorkerError,
    TransientError,
)
from ..platforms import OwnedGame, PlatformAdapter
from ..settings import Settings
from ..store import libraries, writer
from .checkpoints import Checkpoint, CheckpointStore
from .locks import LeaseLock
from .progress import ProgressPublisher, percent, utc_now_iso

log = structlog.get_logger(__name__)

AfterBatch = Callable[[str, int], None]


@dataclass(frozen=True)
class SyncOutcome:
    """How one sync ended: the CLI's `--json` summary and the actor's log line."""

    library_id: str
    run_id: str
    status: str  # completed | private | cancelled | failed
    total_games: int
    new_games: int
    updated_games: int
    removed_games: int
    api_calls: int
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class SyncEngine:
    """Syncs libraries with the given connections and platform adapter factory."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        pool: ConnectionPool,
        adapter_factory: Callable[[], PlatformAdapter],
        *,
        after_batch: AfterBatch | None = None,
    ) -> None:
        self._settings = settings
        self._redis = client
        self._pool = pool
        self._adapter_factory = adapter_factory
        self._after_batch = after_batch
        self._checkpoints = CheckpointStore(client, settings.sync_checkpoint_ttl_s)

    def sync(self, library_id: str, sync_type: str = "manual") -> SyncOutcome:
        """Sync one library to completion; raises SyncWorkerError subclasses after recording them."""
        try:
            return self._sync(library_id, sync_type)
        except INFRASTRUCTURE_ERRORS as exc:  # before the run could record anything
            raise infrastructure_error(exc) from None

    def _sync(self, library_id: str, sync_type: str) -> SyncOutcome:
        with self._pool.connection() as conn:
            library = libraries.get_library(conn, library_id)
        library_id = str(library.library_id)
        lock = LeaseLock(self._redis, keys.lock_key(library_id), self._settings.sync_lock_ttl_s)
        if not lock.acquire():
            raise SyncAlreadyRunning()
        try:
            return _Run(self, library, sync_type, lock).execute()
        finally:
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):  # an unreleased lease expires anyway
                lock.release()


class _Run:
    """One attempt at one library, holding its lease."""

    def __init__(
        self, engine: SyncEngine, library: libraries.Library, sync_type: str, lock: LeaseLock
    ) -> None:
        self.engine = engine
        self.settings = engine._settings
        self.library = library
        self.library_id = str(library.library_id)
        self.lock = lock
        self.progress = ProgressPublisher(
            engine._redis,
            self.library_id,
            ttl_s=self.settings.progress_ttl_s,
            min_interval_s=self.settings.progress_min_interval_s,
        )
        self.checkpoint = self._load_or_start(sync_type)
        self.games: list[OwnedGame] | None = None  # known once fetched
        self.log = log.bind(library_id=self.library_id, run_id=self.checkpoint.run_id)

    def _load_or_start(self, sync_type: str) -> Checkpoint:
        checkpoint = self.engine._checkpoints.load(self.library_id)
        with self.engine._pool.connection() as conn, conn.transaction():
            if checkpoint is None:
                run_id = libraries.start_run(conn, self.library_id, sync_type)
                checkpoint = Checkpoint(
                    run_id=run_id, sync_type=sync_type, started_at=utc_now_iso()
                )
            else:
                libraries.resume_run(conn, checkpoint.run_id)
            libraries.set_sync_status(conn, self.library_id, "syncing")
        self.engine._checkpoints.save(self.library_id, checkpoint)
        return checkpoint

    def execute(self) -> SyncOutcome:
        resumed = self.checkpoint.batches > 0
        self.log.info("sync.started", resumed=resumed, resume_after=self.checkpoint.last_game_id)
        self.progress.publish(
            "starting",
            message="Fetching the game list from Steam",
            games_processed=self.checkpoint.games_processed,
            started_at=self.checkpoint.started_at,
        )
        try:
            games = self._fetch()
            self.lock.renew()  # a huge fetch may take a while: make sure the lease is still ours
            self._stop_if_cancelled()
            self._write(games)
            return self._complete(games)
        except PrivateProfile as exc:
            return self._end("private", exc)
        except SyncCancelled as exc:
            return self._end("cancelled", exc)
        except RateLimitDeferred:
            self._step_aside()
            raise
        except SyncWorkerError as exc:
            self._end("failed", exc)
            raise
        except INFRASTRUCTURE_ERRORS as exc:
            error = infrastructure_error(exc)
        self._end("failed", error)
        raise error

    def _fetch(self) -> list[OwnedGame]:
        adapter = self.engine._adapter_factory()
        try:
            self.games = adapter.fetch_owned_games(self.library.platform_user_id)
            return self.games
        finally:
            self.checkpoint.api_calls += adapter.api_calls

    def _write(self, games: Sequence[OwnedGame]) -> None:
        cp = self.checkpoint
        total = len(games)
        remaining = [g for g in games if g.sort_key > cp.last_game_id]
        cp.games_processed = total - len(remaining)  # committed by earlier attempts
        for batch in _chunks(remaining, self.settings.sync_batch_size):
            with self.engine._pool.connection() as conn, conn.transaction():
                counts = writer.write_batch(conn, self.library_id, self.library.platform, batch)
            cp.last_game_id = batch[-1].sort_key
            cp.games_processed += len(batch)
            cp.new_games += counts.new
            cp.updated_games += counts.updated
            cp.batches += 1
            self.engine._checkpoints.save(self.library_id, cp)
            self.progress.batch(
                cp.games_processed, total, current_game=batch[-1].title, started_at=cp.started_at
            )
            if self.engine._after_batch is not None:
                self.engine._after_batch(self.library_id, cp.batches)
            self._stop_if_cancelled()
            self.lock.renew()

    def _stop_if_cancelled(self) -> None:
        if self.engine._redis.exists(keys.cancel_key(self.library_id)):
            raise SyncCancelled()

    def _step_aside(self) -> None:
        """Out of rate-limit budget: keep the checkpoint and wait in the queue, not as a failure."""
        with self.engine._pool.connection() as conn:
            libraries.set_sync_status(conn, self.library_id, "queued")
        self.log.info(
            "sync.deferred", reason="rate limit budget", resume_after=self.checkpoint.last_game_id
        )

    def _complete(self, games: Sequence[OwnedGame]) -> SyncOutcome:
        cp = self.checkpoint
        owned_ids = [g.platform_game_id for g in games]
        with self.engine._pool.connection() as conn, conn.transaction():
            if games:
                removed = writer.mark_removed(
                    conn, self.library_id, self.library.platform, owned_ids
                )
            else:
                # An empty list for a library we hold games for is more likely a Steam hiccup
                # than a user who lost everything: keep the games (see docs/behaviour.md).
                removed = 0
            totals = cp.totals(len(games), removed)
            libraries.finish_run(conn, self.library_id, cp.run_id, "completed", totals)
        self.engine._checkpoints.clear(self.library_id)
        self.progress.publish(
            "completed",
            progress=100,
            games_processed=len(games),
            total_games=len(games),
            message=f"Synced {len(games)} games: {cp.new_games} new, {cp.updated_games} updated, "
            f"{removed} removed",
            started_at=cp.started_at,
            completed_at=utc_now_iso(),
        )
        self.log.info("sync.completed", **asdict(totals))
        return self._outcome("completed", totals)

    def _end(self, status: str, error: SyncWorkerError) -> SyncOutcome:
        """Record a private, cancelled or failed outcome; stored games stay as they were.

        Transient failures are recorded but not announced: whoever retries (the Retries
        middleware, or the CLI) publishes `retrying` or `failed`.
        """
        cp = self.checkpoint
        totals = cp.totals(cp.games_processed)
        # Best effort: when the database or Redis is what failed, recording may fail too.
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
            if not isinstance(error, TransientError):
                self.engine._checkpoints.clear(self.library_id)  # nothing to resume
            if status == "cancelled":
                self.engine._redis.delete(keys.cancel_key(self.library_id))
            with self.engine._pool.connection() as conn, conn.transaction():
                libraries.finish_run(
                    conn, self.library_id, cp.run_id, status, totals, error.to_dict()
                )
        if not isinstance(error, TransientError):
            fetched = self.games is not None
            total = len(self.games) if self.games is not None else self.library.total_games
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                self.progress.publish(
                    "cancelled" if status == "cancelled" else "failed",
                    progress=percent(cp.games_processed, total) if fetched else 0,
                    games_processed=cp.games_processed,
                    total_games=total,
                    message=error.message,
                    error=error.to_dict(),
                    started_at=cp.started_at,
                    completed_at=utc_now_iso(),
                )
        # Private profiles and cancellations are users' choices, not our failures.
        level = self.log.warning if status == "failed" else self.log.info
        level("sync.ended", status=status, error_code=error.code, reason=error.message)
        return self._outcome(status, totals, error.to_dict())

    def _outcome(
        self, status: str, totals: libraries.RunTotals, error: dict[str, Any] | None = None
    ) -> SyncOutcome:
        return SyncOutcome(
            library_id=self.library_id,
            run_id=self.checkpoint.run_id,
            status=status,
            error=error,
            **asdict(totals),
        )


INFRASTRUCTURE_ERRORS = (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError)


def infrastructure_error(exc: BaseException) -> TransientError:
    """Our transient error for a lost database or Redis connection."""
    return DatabaseUnavailable() if isinstance(exc, psycopg.Error) else RedisUnavailable()


def _chunks(items: Sequence[OwnedGame], size: int) -> Iterator[Sequence[OwnedGame]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
