"""Plain ordered SQL migrations, applied once each, safe to run from several processes at once."""

from __future__ import annotations

from importlib import resources

from psycopg import Connection

# Any constant works; it only has to be the same for every process of this service.
_ADVISORY_LOCK_ID = 0x5C_1A_0001


def available_migrations() -> list[tuple[str, str]]:
    """(version, sql) pairs shipped in the package, in application order."""
    folder = resources.files("sync_worker.store") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(conn: Connection[object]) -> list[str]:
    """Apply the migrations not yet applied; return the versions applied now."""
    applied_now: list[str] = []
    with conn.transaction():
        # Serialises concurrent `sync-worker migrate` runs (two release phases, tests).
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}  # type: ignore[index]
        for version, sql in available_migrations():
            if version in done:
                continue
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now
