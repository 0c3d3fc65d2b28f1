"""Run every benchmark: `python -m bench`."""

from . import big_sync, writer

writer.main()
print()
big_sync.main()
