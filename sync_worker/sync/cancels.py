"""Cancellations: the set of owners (message ids, inline run ids) whose sync must stop.

A cancellation names what was live when it was asked for, the running run (the
lease's owner) and the queued message (the de-duplication slot's live holder), so it
can never ambush a later sync of the same library, however long it is kept.
"""

from __future__ import annotations

import redis

from .. import keys
from .pending import LIVE_HOLDER_LUA

# KEYS: [slot, cancellations, lease]  ARGV: [broker prefix, ttl s]  -> the owners cancelled
CANCEL_SCRIPT = (
    LIVE_HOLDER_LUA
    + """
local targets = {}
local lease = redis.call('GET', KEYS[3])
if lease then table.insert(targets, string.match(lease, '^(%S+)')) end
local queued = live_holder()
if queued and queued ~= targets[1] then table.insert(targets, queued) end
if #targets > 0 then
    redis.call('SADD', KEYS[2], unpack(targets))
    redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return targets
"""
)


def request_cancel(client: redis.Redis, library_id: str, ttl_s: int) -> list[str]:
    """Cancel the library's running and queued syncs; return the owners cancelled (empty: none)."""
    targets = client.register_script(CANCEL_SCRIPT)(
        keys=[keys.pending_key(library_id), keys.cancel_key(library_id), keys.lock_key(library_id)],
        args=[keys.BROKER_NAMESPACE, ttl_s],
    )
    return [t.decode() if isinstance(t, bytes) else str(t) for t in targets]


def is_cancelled(client: redis.Redis, library_id: str, owner: str) -> bool:
    """True when a cancellation names this owner."""
    return bool(client.sismember(keys.cancel_key(library_id), owner))


def forget_cancel(client: redis.Redis, library_id: str, owner: str) -> None:
    """The cancellation of `owner` was carried out."""
    client.srem(keys.cancel_key(library_id), owner)
