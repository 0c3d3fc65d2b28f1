"""Migrations: ordered, applied once, idempotent."""

from __future__ import annotations

from sync_worker.store.migrations import available_migrations, migrate
from tests.conftest import fetch_all


def test_migrate_twice_applies_nothing_the_second_time(runtime):
    """The session already migrated: another run is a no-op that keeps every version recorded."""
    with runtime.pool.connection() as conn:
        assert migrate(conn) == []
    versions = [v for v, _ in available_migrations()]
    assert [
        r[0] for r in fetch_all(runtime, "SELECT version FROM schema_migrations ORDER BY 1")
    ] == versions


def test_contract_tables_and_columns_exist(runtime):
    """The four tables the web service reads, with their contract columns."""
    rows = fetch_all(
        runtime,
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
    )
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    assert {
        "library_id",
        "platform",
        "platform_user_id",
        "display_name",
        "sync_status",
        "sync_error",
        "total_games",
        "last_sync_at",
        "last_success_at",
        "auto_sync",
        "sync_interval",
    } <= columns["user_libraries"]
    assert {
        "platform",
        "platform_game_id",
        "title",
        "icon_url",
        "details",
        "enriched_at",
    } <= columns["games"]
    assert {
        "library_id",
        "platform",
        "platform_game_id",
        "playtime_minutes",
        "playtime_2weeks_minutes",
        "last_played_at",
        "raw_data",
        "first_seen_at",
        "updated_at",
        "removed_at",
    } <= columns["library_games"]
    assert {
        "sync_type",
        "status",
        "started_at",
        "finished_at",
        "total_games",
        "new_games",
        "updated_games",
        "removed_games",
        "api_calls",
        "error",
    } <= columns["sync_runs"]


def test_0008_packs_the_slice_digests_already_stored(runtime):
    """Libraries synced before 0008 keep their digests (their next sync skips unchanged
    slices as before), packed by slice number."""
    import contextlib

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from sync_worker.store import digests, libraries

    url = str(runtime.settings.database_url)
    name = f"{conninfo_to_dict(url)['dbname']}_0008"
    with psycopg.connect(url, autocommit=True) as admin:
        with contextlib.suppress(psycopg.errors.InvalidCatalogName):
            admin.execute(f'DROP DATABASE "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(make_conninfo(url, dbname=name)) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in available_migrations():
            if version >= "0008":
                break
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        conn.commit()
        library_id = libraries.register_library(conn, "steam", "76561198000000008")
        stored = {3: bytes(range(16)), 1: b"\xff" * 16, 70_000: bytes(range(16, 32))}
        for number, digest in stored.items():
            conn.execute(
                "INSERT INTO library_slices (library_id, slice, digest) VALUES (%s, %s, %s)",
                (library_id, number, digest),
            )
        conn.commit()

        assert migrate(conn) == [
            "0008_library_digests",
            "0009_dashboard_indexes",
            "0010_platform_credentials",
            "0011_relink_required",
        ]
        packed = digests.stored_digests(conn, library_id)
    assert packed == digests.StoredDigests(stored, None)
