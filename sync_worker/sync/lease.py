"""The lease on a library: one run at a time, kept alive by a thread while the run lives.

The value is `{owner} {token}`: the owner is the sync's message id (or an inline run's
id), the token is new for every attempt. A keeper thread renews the lease every third
of its TTL, so a live run keeps it through any wait (a slow Steam answer, a rate-limit
back-off) and a dead process's lease frees itself within one TTL.

A lease held by the *same* owner is a leftover of that message's earlier delivery (its
worker died, or Dramatiq delivered it twice): the new attempt takes it over at once.
The run's fence in PostgreSQL (`store.runs.fence`) stops the old attempt, if it is
still alive, from committing another batch. A lease held by another owner means
"later", never "drop": the caller steps back into the queue and tries again.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator

import redis
import structlog

from .. import keys
from ..infrastructure import INFRASTRUCTURE_ERRORS

log = structlog.get_logger(__name__)

# KEYS: [lease]  ARGV: [owner, value, ttl ms]  -> -1 taken, else the holder's remaining ms
ACQUIRE_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if (not held) or string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return -1
end
return math.max(redis.call('PTTL', KEYS[1]), 0)
"""

# KEYS: [lease]  ARGV: [value, ttl ms]  -> 1 still ours (renewed, or re-taken after it lapsed
# with nobody else taking it), 0 someone else holds it
RENEW_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not held then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""

# KEYS: [lease]  ARGV: [value]  -> 1 released, 0 not ours
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_owner(client: redis.Redis, library_id: str) -> str | None:
    """The owner of the library's lease, if anyone holds it."""
    return lease_owners(client, [library_id])[library_id]


def lease_owners(client: redis.Redis, library_ids: list[str]) -> dict[str, str | None]:
    """The owner of each library's lease (None: free), in one round trip."""
    if not library_ids:
        return {}
    values = client.mget([keys.lock_key(library_id) for library_id in library_ids])
    return {
        library_id: (value.decode() if isinstance(value, bytes) else str(value)).split(" ", 1)[0]
        if value is not None
        else None
        for library_id, value in zip(library_ids, values, strict=True)
    }


class Lease:
    """One attempt's lease on one library."""

    def __init__(self, client: redis.Redis, library_id: str, owner: str, ttl_s: float) -> None:
        self.owner = owner
        self.token = secrets.token_hex(16)
        self.holder_ttl_s = 0.0  # after a failed acquire: how long the holder's lease has left
        self._client = client
        self._library_id = library_id
        self._key = keys.lock_key(library_id)
        self._value = f"{owner} {self.token}"
        self._ttl_ms = int(ttl_s * 1000)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        """True once another owner holds the lease: this attempt must stand down."""
        return self._lost.is_set()

    def confirm(self) -> bool:
        """Renew now; False (and `lost`) when another owner holds the lease. Unknown while
        Redis is unreachable: then it counts as still ours (the fence guards the writes)."""
        if not self.lost:
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                self._renew_once()
        return not self.lost

    def acquire_when_free(self) -> bool:
        """Take the lease only once nobody holds it, waiting out our own message's leftover
        (it lapses within one TTL unless a live delivery renews it); False when held."""
        deadline = time.monotonic() + self._ttl_ms / 1000 + 1
        while True:
            if self._client.set(self._key, self._value, nx=True, px=self._ttl_ms):
                return True
            if lease_owner(self._client, self._library_id) != self.owner:
                return False
            if time.monotonic() > deadline:
                return False  # renewed all along: another delivery of this message is alive
            time.sleep(0.5)

    def acquire(self) -> bool:
        """Take the lease (or our own message's leftover); False when another owner holds it."""
        script = self._client.register_script(ACQUIRE_SCRIPT)
        remaining_ms = int(script(keys=[self._key], args=[self.owner, self._value, self._ttl_ms]))
        self.holder_ttl_s = max(remaining_ms, 0) / 1000
        return remaining_ms < 0

    @contextlib.contextmanager
    def kept_alive(self) -> Iterator[Lease]:
        """Renew the lease in a daemon thread until the block ends, then release it."""
        self._keeper = threading.Thread(target=self._keep, name="lease-keeper", daemon=True)
        self._keeper.start()
        try:
            yield self
        finally:
            self.release()

    def release(self) -> None:
        """Stop renewing and give the lease up if it is still ours (never frees another's).

        Once is enough: a run lets go before announcing its end, then its block exits.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join()
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):  # an unreleased lease expires anyway
            self._client.register_script(RELEASE_SCRIPT)(keys=[self._key], args=[self._value])

    def _renew_once(self) -> None:
        renew = self._client.register_script(RENEW_SCRIPT)
        if not renew(keys=[self._key], args=[self._value, self._ttl_ms]):
            log.warning("sync.lease_lost", key=self._key)
            self._lost.set()

    def _keep(self) -> None:
        interval_s = self._ttl_ms / 3000
        while not self._stop.wait(interval_s) and not self.lost:
            try:
                self._renew_once()
            except INFRASTRUCTURE_ERRORS as exc:  # Redis blip: keep trying; the fence guards writes
                log.warning("sync.lease_renew_failed", error=type(exc).__name__)
