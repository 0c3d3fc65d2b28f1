"""The sync engine: one library, fetched once, its changed slices written in checkpointed batches.

Plain synchronous Python (no Dramatiq): the actor, the CLI and the tests drive it alike.
Slices whose digest matches the one stored with their rows are skipped (see
docs/performance.md). Per batch, one transaction holds the fence check, the rows, the
digests of the slices the batch finishes and the checkpoint with its counts; then
progress is published and interruptions are checked (cancellation, a lost lease, a
stopping worker). A crash anywhere leaves the checkpoint at the last committed batch,
and the next attempt resumes the same `sync_runs` row.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import Any

import psycopg
import redis
import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from ..errors import (
    ConfigurationError,
    Interrupted,
    LockLost,
    OwnOutage,
    PermanentError,
    PrivateProfile,
    RelinkRequired,
    SyncAlreadyRunning,
    SyncCancelled,
    SyncDeferred,
    SyncWorkerError,
    TransientError,
    WorkerStopping,
)
from ..infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error
from ..platforms import PlatformAdapter, SameAnswer
from ..platforms.http import CallGate
from ..platforms.owned_library import OwnedLibrary, iter_batches
from ..settings import Settings
from ..store import digests, libraries, runs, writer
from .cancels import forget_cancel, is_cancelled
from .lease import Lease
from .outcome import SyncOutcome
from .pending import release_pending
from .progress import ProgressPublisher, percent, utc_now_iso

log = structlog.get_logger(__name__)

AfterBatch = Callable[[str, int], None]
PLATFORM_NAMES = {"steam": "Steam", "gog": "GOG"}
#: How long a sync that found the lease held waits before asking again (the holder may
#: finish any moment; a dead holder's lease lapses within SYNC_LOCK_TTL_S).
LEASE_POLL_S = 2.0


class SyncEngine:
    """Syncs libraries with the given connections and platform adapter factory."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        pool: ConnectionPool,
        adapter_factory: Callable[[], PlatformAdapter],
        *,
        stopping: threading.Event | None = None,
        after_batch: AfterBatch | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        outages_waited_out: bool = False,
        gate: CallGate | None = None,
        platform_runs: Mapping[str, type[Run]] | None = None,
    ) -> None:
        """`stopping`, once set, ends the run at its next batch boundary (WorkerStopping);
        `on_event` sees each progress event the run publishes; `outages_waited_out` (the
        workers, whose Retries wait our own outages out) leaves a library whose attempt met
        such an outage `queued` rather than `failed`. `gate` admits the calls a platform's
        run makes itself (GOG's); `platform_runs` names the run of each platform other than
        Steam this engine syncs (`sync.gog_run.GogRun` for "gog")."""
        self.settings = settings
        self.redis = client
        self.pool = pool
        self.adapter_factory = adapter_factory
        self.stopping = stopping
        self.after_batch = after_batch
        self.on_event = on_event
        self.outages_waited_out = outages_waited_out
        self.gate = gate
        self.platform_runs: Mapping[str, type[Run]] = {"steam": Run, **(platform_runs or {})}

    def sync(
        self, library_id: str, sync_type: str = "manual", *, owner: str | None = None
    ) -> SyncOutcome:
        """Sync one library to completion and return how it ended.

        `owner` is the sync's message id (an inline run gets a fresh one). Returns for
        every ending of the run (completed, private, cancelled, permanent failure).
        Raises TransientError after recording a failed attempt (the run stays open to
        resume), SyncDeferred to step back into the queue, LockLost when another attempt
        took the run over, UnknownLibrary before any work.
        """
        owner = owner or f"inline-{secrets.token_hex(8)}"
        if self.stopping is not None and self.stopping.is_set():
            raise WorkerStopping()  # a stopping worker starts nothing, not even a Steam call
        try:
            with autocommit(self.pool) as conn:
                library = libraries.get_library(conn, library_id)
            lease = Lease(self.redis, str(library.library_id), owner, self.settings.sync_lock_ttl_s)
            if not lease.acquire():
                raise SyncAlreadyRunning(retry_after_s=min(lease.holder_ttl_s, LEASE_POLL_S))
            with lease.kept_alive():
                with autocommit(self.pool) as conn:
                    ended = self._ended_by(conn, str(library.library_id), owner)
                    if ended is not None:
                        return ended
                    run_class = self.platform_runs.get(library.platform)
                    if run_class is None:
                        raise ConfigurationError(
                            f"This process cannot sync {library.platform} libraries."
                        )
                    run = run_class(self, conn, library, sync_type, lease)
                return run.execute()
        except INFRASTRUCTURE_ERRORS as exc:  # before the run could record anything
            raise infrastructure_error(exc) from None

    def _ended_by(self, conn: Connection[Any], library_id: str, owner: str) -> SyncOutcome | None:
        """The outcome of the run `owner` already saw to its end, or None.

        Checked under the lease, before a run is opened: a message redelivered after its
        run ended must not open a second one (one more Steam call, and the user seeing the
        sync start and complete twice).
        """
        ended = runs.ended_run_of(conn, library_id, owner)
        if ended is None:
            return None
        release_pending(self.redis, library_id, owner)
        log.info(
            "sync.redelivered", library_id=library_id, run_id=ended.run_id, status=ended.status
        )
        return SyncOutcome(
            library_id=library_id,
            run_id=ended.run_id,
            status=ended.status,
            error=ended.error,
            redelivered=True,
            **asdict(ended.totals),
        )


@contextlib.contextmanager
def autocommit(pool: ConnectionPool) -> Iterator[Connection[Any]]:
    """A pooled connection whose lone statements commit by themselves: a read is one round
    trip instead of three (BEGIN, the read, COMMIT); writes open their own transactions."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            try:
                conn.autocommit = False  # as the pool's other users expect it back
            except psycopg.Error:  # broken: never handed out again, in autocommit or not
                conn.close()


class Run:
    """One attempt at one library, holding its lease and its run's fence (Steam's; another
    platform's run overrides `_work`)."""

    def __init__(
        self,
        engine: SyncEngine,
        conn: Connection[Any],
        library: libraries.Library,
        sync_type: str,
        lease: Lease,
    ) -> None:
        self.engine = engine
        self.library = library
        self.library_id = str(library.library_id)
        self.lease = lease
        self.run = runs.open_run(conn, self.library_id, sync_type, lease.token, lease.owner)
        # As committed with the rows they describe; advanced with each batch this run commits.
        self.digests = digests.stored_digests(conn, self.library_id)
        self.started_at = self.run.started_at.isoformat()
        self.unrecorded_calls = 0  # Steam calls of this attempt not yet added to the run row
        self.games_processed = self.run.games_processed
        self.total_games: int | None = None  # known once fetched
        self.progress = ProgressPublisher(
            engine.redis,
            self.library_id,
            ttl_s=engine.settings.progress_ttl_s,
            min_interval_s=engine.settings.progress_min_interval_s,
            listener=engine.on_event,
            message_id=lease.owner,
        )
        self.log = log.bind(library_id=self.library_id, run_id=self.run.run_id)

    def execute(self) -> SyncOutcome:
        self.log.info(
            "sync.started",
            attempt=self.run.attempts,
            resume_after=self.run.resume_after,
            games_already_written=self.run.games_processed,
        )
        try:
            self.progress.publish(
                "starting",
                message=f"Fetching the game list from {PLATFORM_NAMES.get(self.library.platform)}",
                games_processed=self.games_processed,
                total_games=self.library.total_games,
                started_at=self.started_at,
            )
            return self._work()
        except PrivateProfile as exc:
            return self._end("private", exc)
        except RelinkRequired as exc:
            return self._end("relink_required", exc)
        except SyncCancelled as exc:
            return self._end("cancelled", exc)
        except PermanentError as exc:
            return self._end("failed", exc)
        except SyncDeferred:
            self._pause()
            raise
        except LockLost:
            self.log.info("sync.stood_down", reason="another attempt took this run over")
            raise
        except TransientError as exc:
            error = exc
        except KeyboardInterrupt:  # Ctrl-C of an inline sync: the next sync resumes
            self._record_failed_attempt(Interrupted())
            raise
        except INFRASTRUCTURE_ERRORS as exc:
            error = infrastructure_error(exc)
        if not self.lease.confirm():
            # A stalled attempt whose run was taken over: its failure is not the run's, and
            # a retry would only fight the attempt that now owns it.
            self.log.info("sync.stood_down", reason="lease lost", error_code=error.code)
            raise LockLost() from None
        self._record_failed_attempt(error)
        raise error

    # -- the work ----------------------------------------------------------------

    def _work(self) -> SyncOutcome:
        """Fetch the library and write what changed (a platform's run may do it its way)."""
        fetched = self._fetch()
        self._check_interrupts()
        if isinstance(fetched, SameAnswer):
            return self._completed(*self._finish_alone(None), same_answer=True)
        with fetched as owned:
            return self._completed(*self._write(owned), same_answer=False)

    def _fetch(self) -> OwnedLibrary | SameAnswer:
        """The library's games, or SameAnswer when Steam answered exactly what this
        library's last completed sync read (unless every sync must write everything)."""
        adapter = self.engine.adapter_factory()
        known = self.digests.answer if self.engine.settings.sync_differential else None
        try:
            fetched = adapter.fetch_owned_games(self.library.platform_user_id, known)
        finally:
            self.unrecorded_calls += adapter.api_calls
        self.total_games = (
            self.library.total_games if isinstance(fetched, SameAnswer) else len(fetched)
        )
        return fetched

    def _write(self, owned: OwnedLibrary) -> tuple[int, runs.RunTotals]:
        """Write the slices that changed since their digests were stored, in batches; the
        last batch's transaction also completes the run (one transaction fewer: for most
        libraries, the only batch). Returns the games found removed and the run's totals."""
        resume_after = self.run.resume_after if self.run.resume_after is not None else -1
        self.games_processed = owned.count_up_to(resume_after)  # committed by earlier attempts
        stored = self.digests.slices if self.engine.settings.sync_differential else {}
        changed = [
            s
            for s in owned.slices
            if s.last_key > resume_after and stored.get(s.number) != s.digest
        ]
        # A library with no digests has no rows to compare with (or is to be compared
        # whole): the writer's upserts alone are exact, without probing for unchanged rows.
        probe = bool(self.digests.slices)
        size = self.engine.settings.sync_batch_size
        batches = list(iter_batches(changed, self.games_processed, size))  # ranges only
        if not batches:  # nothing to write: the digests change only by slices gone
            return self._finish_alone(owned)
        for number, batch in enumerate(batches, 1):
            last = number == len(batches)
            # Decoded as the COPY takes them: one slice's games in memory, not a batch's.
            games = (g for start, end in batch.ranges for g in owned.games(start, end))
            written = {**self.digests.slices, **{s.number: s.digest for s in batch.finished}}
            with self._fenced() as conn:
                counts = writer.write_batch(
                    conn, self.library_id, self.library.platform, games, probe=probe
                )
                runs.record_batch(
                    conn,
                    self.run.run_id,
                    resume_after=owned.key_at(batch.end - 1),
                    games_processed=batch.end,
                    new=counts.new,
                    updated=counts.updated,
                    api_calls=self.unrecorded_calls,
                )
                if last:
                    ending = self._finish(conn, owned, written, api_calls=0)  # recorded above
                else:
                    digests.save_digests(conn, self.library_id, written)  # the answer: unknown
            self.unrecorded_calls = 0
            self.digests = digests.StoredDigests(written)
            self.games_processed = batch.end  # unchanged slices before it included
            self.progress.batch(
                self.games_processed,
                len(owned),
                current_game=owned.games(batch.end - 1, batch.end)[0].title,
                started_at=self.started_at,
            )
            if self.engine.after_batch is not None:
                self.engine.after_batch(self.library_id, self.run.batches + number)
            if not last:
                self._check_interrupts()
        return ending

    def _check_interrupts(self) -> None:
        """Between batches: a cancellation, a lost lease or a stopping worker ends the attempt."""
        if is_cancelled(self.engine.redis, self.library_id, self.lease.owner):
            raise SyncCancelled()
        if self.lease.lost:
            raise LockLost()
        if self.engine.stopping is not None and self.engine.stopping.is_set():
            raise WorkerStopping()

    @contextlib.contextmanager
    def _fenced(self) -> Iterator[Connection[Any]]:
        """A transaction for this attempt's writes: raises LockLost unless it still owns the run."""
        with self.engine.pool.connection() as conn, conn.transaction():
            runs.fence(conn, self.library_id, self.run.run_id, self.lease.token)
            yield conn

    # -- endings -------------------------------------------------------------------

    def _finish_alone(self, owned: OwnedLibrary | None) -> tuple[int, runs.RunTotals]:
        """`_finish` in a transaction of its own: this attempt writes no batch."""
        with self._fenced() as conn:
            return self._finish(conn, owned, self.digests.slices, self.unrecorded_calls)

    def _finish(
        self,
        conn: Connection[Any],
        owned: OwnedLibrary | None,
        written: dict[int, bytes],
        api_calls: int,
    ) -> tuple[int, runs.RunTotals]:
        """In the caller's fenced transaction: record removals and the digests, and close the
        run as completed. `owned` None: the same answer as the last completed sync's, so the
        stored rows and digests already say it all. Returns (removed games, totals)."""
        games = self.total_games or 0
        removed = 0
        # An empty list for a library we hold games for is more likely a Steam hiccup
        # than a user who lost everything: keep the games (see docs/behaviour.md).
        if owned is not None and games:
            # Over every owned id, not only changed slices: an earlier attempt may have
            # written a slice's digest and died before its removals.
            removed = writer.mark_removed(conn, self.library_id, self.library.platform, owned.ids())
            self._save_final_digests(conn, owned, written)
        totals = runs.finish_run(
            conn,
            self.library_id,
            self.run.run_id,
            "completed",
            total_games=games,
            removed_games=removed,
            api_calls=api_calls,
        )
        return removed, totals

    def _completed(self, removed: int, totals: runs.RunTotals, *, same_answer: bool) -> SyncOutcome:
        """The run is committed as completed: let go, and say so."""
        games = totals.total_games
        self._let_go()
        self.progress.publish(
            "completed",
            progress=100,
            games_processed=games,
            total_games=games,
            message=f"Synced {games} games: {totals.new_games} new, "
            f"{totals.updated_games} updated, {removed} removed",
            started_at=self.started_at,
            completed_at=utc_now_iso(),
        )
        self.log.info("sync.completed", same_answer=same_answer, **asdict(totals))
        return self._outcome("completed", totals)

    def _save_final_digests(
        self, conn: Connection[Any], owned: OwnedLibrary, written: dict[int, bytes]
    ) -> None:
        """Keep the digests (as written) of the slices the library still has; the answer's
        digest only when every one of them matches this answer (slices before the checkpoint
        were written by an earlier attempt, from what Steam answered it)."""
        current = {s.number: s.digest for s in owned.slices}
        kept = {n: d for n, d in written.items() if n in current}
        answer = owned.answer if kept == current else None
        digests.save_digests(conn, self.library_id, kept, answer)

    def _end(self, status: str, error: SyncWorkerError) -> SyncOutcome:
        """Close the run as private, cancelled or failed; stored games stay as they were."""
        with self._fenced() as conn:
            totals = runs.finish_run(
                conn,
                self.library_id,
                self.run.run_id,
                status,
                total_games=self.games_processed,
                api_calls=self.unrecorded_calls,
                error=error.to_dict(),
            )
        if status == "cancelled":
            forget_cancel(self.engine.redis, self.library_id, self.lease.owner)
        self._let_go()
        total = self.total_games if self.total_games is not None else self.library.total_games
        self.progress.final(
            status,
            error,
            progress=percent(self.games_processed, total) if self.total_games is not None else 0,
            games_processed=self.games_processed,
            total_games=total,
            started_at=self.started_at,
        )
        # Private profiles and cancellations are users' choices, not our failures.
        level = self.log.warning if status == "failed" else self.log.info
        level("sync.ended", status=status, error_code=error.code, reason=error.message)
        return self._outcome(status, totals, error.to_dict())

    def _let_go(self) -> None:
        """The run is over: free the request slot and the lease before announcing it, so a
        request or a cancel that reacts to the final event sees an idle library."""
        release_pending(self.engine.redis, self.library_id, self.lease.owner)
        self.lease.release()

    def _pause(self) -> None:
        """Stepping back into the queue (budget, shutdown): the run stays open to resume."""
        with contextlib.suppress(LockLost, *INFRASTRUCTURE_ERRORS), self._fenced() as conn:
            runs.record_pause(conn, self.library_id, self.run.run_id, self.unrecorded_calls)
        self.log.info("sync.paused", games_written=self.games_processed)

    def _record_failed_attempt(self, error: SyncWorkerError) -> None:
        """Best effort (the database or Redis may be what failed): note the attempt's error.

        Not announced: whoever retries (the Retries middleware, or the CLI) publishes
        `retrying` or `failed`.
        """
        waits = self.engine.outages_waited_out and isinstance(error, OwnOutage)
        with contextlib.suppress(LockLost, *INFRASTRUCTURE_ERRORS), self._fenced() as conn:
            runs.record_failed_attempt(
                conn,
                self.library_id,
                self.run.run_id,
                error.to_dict(),
                self.unrecorded_calls,
                library_status="queued" if waits else "failed",
            )
        self.log.warning("sync.attempt_failed", error_code=error.code, reason=error.message)

    def _outcome(
        self, status: str, totals: runs.RunTotals, error: dict[str, Any] | None = None
    ) -> SyncOutcome:
        return SyncOutcome(
            library_id=self.library_id,
            run_id=self.run.run_id,
            status=status,
            error=error,
            **asdict(totals),
        )
