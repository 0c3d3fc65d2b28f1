"""The de-duplication slot: at most one queued-or-running sync message per library.

`sync:pending:{library_id}` holds that message's id. Requests claim it; the message's
final after-hook releases it (only if it still holds its own id, so a forced request
that replaced it is not freed by the old message). A TTL bounds a lost release.
"""

from __future__ import annotations

import redis

from .. import keys

# KEYS: [pending key]  ARGV: [message id]  -> 1 released, 0 held by another message
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def claim_pending(
    client: redis.Redis, library_id: str, message_id: str, *, ttl_s: int, force: bool
) -> str | None:
    """Claim the slot for `message_id`; return the id already holding it (None: claimed)."""
    key = keys.pending_key(library_id)
    if force:
        client.set(key, message_id, ex=ttl_s)
        return None
    if client.set(key, message_id, ex=ttl_s, nx=True):
        return None
    existing = client.get(key)
    if existing is None:  # released in between: try once more
        return claim_pending(client, library_id, message_id, ttl_s=ttl_s, force=force)
    return existing.decode() if isinstance(existing, bytes) else str(existing)


def release_pending(client: redis.Redis, library_id: str, message_id: str) -> bool:
    """Free the slot if `message_id` still holds it."""
    return bool(
        client.register_script(RELEASE_SCRIPT)(
            keys=[keys.pending_key(library_id)], args=[message_id]
        )
    )


def pending_message(client: redis.Redis, library_id: str) -> str | None:
    """The id of the library's queued or running sync message, if any."""
    value = client.get(keys.pending_key(library_id))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
