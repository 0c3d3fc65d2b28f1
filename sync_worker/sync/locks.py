"""A lease lock in Redis: one holder at a time, a short TTL renewed as work progresses.

A dead holder frees the lock within one TTL; a holder whose lease ran out learns it
at the next renew instead of writing on without it.
"""

from __future__ import annotations

import secrets

import redis

from ..errors import LockLost

# KEYS: [lock key]  ARGV: [token, ttl ms]  -> 1 renewed, 0 not ours any more
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: [lock key]  ARGV: [token]  -> 1 released, 0 not ours
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLock:
    """The lease on one key, held by this object's random token."""

    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self._client = client
        self._key = key
        self._ttl_ms = int(ttl_s * 1000)
        self._token = secrets.token_hex(16)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; False when someone does."""
        return bool(self._client.set(self._key, self._token, nx=True, px=self._ttl_ms))

    def renew(self) -> None:
        """Extend the lease; raises LockLost if it expired or was taken over."""
        if not self._renew(keys=[self._key], args=[self._token, self._ttl_ms]):
            raise LockLost()

    def release(self) -> None:
        """Give the lease up if still ours (never frees someone else's)."""
        self._release(keys=[self._key], args=[self._token])
