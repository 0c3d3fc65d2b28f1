"""The de-duplication slot: at most one live queued-or-running sync message per library.

`sync:pending:{library_id}` holds `{message id}` while a request is being enqueued, then
`{message id} {queue} {redis id}`: where that message's current copy sits in the broker.
Every enqueue (a request, a retry, a deferral, Dramatiq moving a delayed message to its
queue) re-points it (`track`). A claim checks the holder against Dramatiq's message hash,
so a slot whose message is gone (acked, dead-lettered, lost with Redis) or cancelled
never blocks a new request: nothing but a live message holds the slot.
"""

from __future__ import annotations

import redis

from .. import keys

#: A claimed slot's lifetime until its message is stored and tracked (milliseconds later,
#: normally): how long a request that died in between can hold the slot with no message.
ENQUEUE_GRACE_S = 10

# Lua shared by the scripts below: the live holder's message id, or nil.
# KEYS[1] slot, KEYS[2] cancellations; ARGV[1] the broker's key prefix ("dramatiq").
LIVE_HOLDER_LUA = """
local function live_holder()
    local held = redis.call('GET', KEYS[1])
    if not held then return nil end
    local id, queue, rid = string.match(held, '^(%S+) (%S+) (%S+)$')
    if not id then id = held end
    if redis.call('SISMEMBER', KEYS[2], id) == 1 then return nil end
    if not rid then return id end
    if redis.call('HEXISTS', ARGV[1] .. ':' .. queue .. '.msgs', rid) == 1 then return id end
    return nil
end
"""

# KEYS: [slot, cancellations]  ARGV: [prefix, message id, grace s, force 0/1]
# -> nil when claimed, else the id of the live message already holding the slot
CLAIM_SCRIPT = (
    LIVE_HOLDER_LUA
    + """
if ARGV[4] == '0' then
    local holder = live_holder()
    if holder then return holder end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return false
"""
)

# Lua shared by the scripts below: does the slot KEYS[1] belong to message ARGV[1]?
HELD_BY_MESSAGE_LUA = """
local function held_by_message()
    local held = redis.call('GET', KEYS[1])
    return held and (held == ARGV[1] or string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ')
end
"""

# KEYS: [slot]  ARGV: [message id, queue, redis id, ttl s]  -> 1 re-pointed, 0 not its slot
TRACK_SCRIPT = (
    HELD_BY_MESSAGE_LUA
    + """
if held_by_message() then
    redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'EX', ARGV[4])
    return 1
end
return 0
"""
)

# KEYS: [slot]  ARGV: [message id]  -> 1 released, 0 held by another message
RELEASE_SCRIPT = (
    HELD_BY_MESSAGE_LUA
    + """
if held_by_message() then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
)

# KEYS: [slot, cancellations]  ARGV: [prefix]  -> the live holder's id or nil
HOLDER_SCRIPT = LIVE_HOLDER_LUA + "\nreturn live_holder() or false\n"


def claim_pending(
    client: redis.Redis, library_id: str, message_id: str, *, force: bool
) -> str | None:
    """Claim the slot for `message_id`; return the live message already holding it (None: claimed)."""
    return claim_many(client, [(library_id, message_id)], force=force)[0]


def claim_many(
    client: redis.Redis, requests: list[tuple[str, str]], *, force: bool
) -> list[str | None]:
    """`claim_pending` for many (library id, message id) pairs in one round trip."""
    script = client.register_script(CLAIM_SCRIPT)
    pipe = client.pipeline(transaction=False)
    for library_id, message_id in requests:
        script(
            keys=[keys.pending_key(library_id), keys.cancel_key(library_id)],
            args=[keys.BROKER_NAMESPACE, message_id, ENQUEUE_GRACE_S, int(force)],
            client=pipe,
        )
    return [_text(holder) for holder in pipe.execute()]


def track_pending(
    client: redis.Redis, library_id: str, message_id: str, queue: str, redis_id: str, ttl_s: int
) -> bool:
    """Point the slot at the broker copy of `message_id` just enqueued (if the slot is its)."""
    return bool(
        client.register_script(TRACK_SCRIPT)(
            keys=[keys.pending_key(library_id)], args=[message_id, queue, redis_id, ttl_s]
        )
    )


def release_pending(client: redis.Redis, library_id: str, message_id: str) -> bool:
    """Free the slot if `message_id` still holds it."""
    return bool(
        client.register_script(RELEASE_SCRIPT)(
            keys=[keys.pending_key(library_id)], args=[message_id]
        )
    )


def pending_message(client: redis.Redis, library_id: str) -> str | None:
    """The id of the library's live queued or running sync message, if any."""
    holder = client.register_script(HOLDER_SCRIPT)(
        keys=[keys.pending_key(library_id), keys.cancel_key(library_id)],
        args=[keys.BROKER_NAMESPACE],
    )
    return _text(holder)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
