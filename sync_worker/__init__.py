"""sync-worker: keeps users' game libraries (Steam first) mirrored in PostgreSQL."""

__version__ = "0.1.0"
