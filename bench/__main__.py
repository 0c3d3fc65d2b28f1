"""Run every benchmark: `python -m bench`."""

from . import big_sync, enrichment, rate_limit, scheduling, writer

for part in (writer, big_sync, rate_limit, scheduling, enrichment):
    part.main()
    print()
