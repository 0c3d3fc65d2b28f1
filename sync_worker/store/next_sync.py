"""When a library is next due for an auto-sync, given how its last sync ended.

Kept in `user_libraries.next_sync_at` (indexed), so finding due libraries is one range
scan however large the fleet. `-infinity` means never synced: those come first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: An account that is private, invalid or too large is asked again later each time it fails
#: that way (1 day, 3 days, then weekly), and at its normal interval once it works again.
PERMANENT_BACKOFF = (timedelta(days=1), timedelta(days=3), timedelta(days=7))
#: A library too large for STEAM_MAX_RESPONSE_MB stays too large until someone raises it.
#: A GOG account to link again waits likewise: the scheduler never hot-loops on it.
ACCOUNT_PROBLEMS = frozenset(
    {"private_profile", "invalid_steam_id", "steam_response_too_large", "relink_required"}
)
#: Any other failure (Steam down past every retry, a bad key) is tried again this soon.
FAILED_RETRY_DELAY = timedelta(hours=1)


def next_auto_sync(
    status: str,
    error_code: str | None,
    account_failures: int,
    interval: timedelta,
    now: datetime,
) -> tuple[datetime, int]:
    """(next due time, consecutive account failures) after a sync ended with `status`."""
    if status == "completed":
        return now + interval, 0
    if error_code in ACCOUNT_PROBLEMS:
        failures = account_failures + 1
        return now + PERMANENT_BACKOFF[min(failures, len(PERMANENT_BACKOFF)) - 1], failures
    if status == "cancelled":  # cancelled by hand: not again before a full interval
        return now + interval, account_failures
    return now + min(interval, FAILED_RETRY_DELAY), account_failures
