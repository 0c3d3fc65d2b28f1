"""Run every benchmark: `python -m bench`."""

from . import big_sync, rate_limit, writer

writer.main()
print()
big_sync.main()
print()
rate_limit.main()
