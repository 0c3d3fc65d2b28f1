"""The `sync-worker` command, run as a real process against the test servers."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading

from sync_worker import keys
from sync_worker.ratelimit import RateLimiter
from sync_worker.simulator import ProfileKind, steam_id_for
from sync_worker.sync.progress import make_event, write_events
from tests.conftest import TEST_KEY, cli, fetch_all, wait_for


def test_sync_json_writes_the_simulators_games_and_a_rerun_changes_nothing(
    runtime, subprocess_env, sim
):
    """The contract's JSON summary, exact rows, then 0 new / 0 updated on a second run."""
    steam_id = steam_id_for(640, seed=31)
    first = cli(subprocess_env, "sync", "--steam-id", steam_id, "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert set(summary) == {
        "library_id",
        "status",
        "total_games",
        "new_games",
        "updated_games",
        "removed_games",
        "api_calls",
    }
    stored = fetch_all(
        runtime,
        "SELECT platform_game_id FROM library_games WHERE library_id = %s",
        summary["library_id"],
    )
    assert sorted(int(r[0]) for r in stored) == sim.owned_app_ids(steam_id)
    assert (summary["status"], summary["new_games"], summary["total_games"]) == (
        "completed",
        640,
        640,
    )

    second = json.loads(cli(subprocess_env, "sync", "--steam-id", steam_id, "--json").stdout)
    assert second["library_id"] == summary["library_id"]
    assert (second["new_games"], second["updated_games"], second["removed_games"]) == (0, 0, 0)


def test_sync_of_a_private_profile_exits_nonzero_with_its_code(runtime, subprocess_env):
    """Exit 0 only when completed; the reason is in the JSON."""
    result = cli(
        subprocess_env, "sync", "--steam-id", steam_id_for(5, ProfileKind.PRIVATE), "--json"
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "private_profile"


def test_invalid_steam_id_fails_before_any_call(runtime, subprocess_env, sim):
    """A typo never reaches Steam, and nothing is registered."""
    result = cli(subprocess_env, "sync", "--steam-id", "7656119800", "--json")
    assert result.returncode == 2  # bad input
    assert json.loads(result.stdout)["error"]["code"] == "invalid_steam_id"
    assert sim.stats()["total"] == 0
    assert fetch_all(runtime, "SELECT 1 FROM user_libraries") == []


def test_bad_key_fails_once_and_never_prints_the_key(runtime, subprocess_env, sim):
    """At DEBUG, with urllib3 logging URLs, the key appears in no output line, DB row or event."""
    secret = "LEAKY-KEY-0f4e9c2a77"
    env = {**subprocess_env, "STEAM_API_KEY": secret}
    result = cli(env, "sync", "--steam-id", steam_id_for(25, seed=32), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "steam_key_rejected"
    assert sim.calls() == 1  # no retry storm
    assert "GetOwnedGames" in result.stderr  # the debug log did log the request...
    assert secret not in result.stdout + result.stderr  # ...without the key
    dump = fetch_all(
        runtime,
        "SELECT row_to_json(l)::text, row_to_json(r)::text FROM user_libraries l JOIN sync_runs r USING (library_id)",
    )
    assert dump and secret not in repr(dump)
    assert all(
        secret.encode() not in (runtime.redis.dump(k) or b"") for k in runtime.redis.keys("*")
    )


def test_unreachable_steam_error_output_has_no_key(runtime, subprocess_env):
    """Connection errors (whose requests text holds the URL) print cleanly."""
    env = {**subprocess_env, "STEAM_API_BASE_URL": "http://127.0.0.1:9"}
    result = cli(env, "sync", "--steam-id", steam_id_for(5), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "steam_unavailable"
    assert TEST_KEY not in result.stdout + result.stderr


def test_migrate_is_idempotent(runtime, subprocess_env):
    """`sync-worker migrate` on a migrated database changes nothing and says so."""
    result = cli(subprocess_env, "migrate")
    assert result.returncode == 0 and "schema up to date" in result.stdout


def test_inline_sync_waits_for_budget_and_says_so(runtime, settings, subprocess_env, sim):
    """With the shared bucket full, `sync` waits for the window (on the terminal), then completes."""
    window = {"steam_webapi_calls_per_window": 2, "steam_webapi_window_seconds": 3}
    workers_view = RateLimiter.from_settings(
        runtime.redis, settings.model_copy(update=window), max_wait_s=0
    )
    assert (
        workers_view.try_acquire("steam_webapi").admitted
        and workers_view.try_acquire("steam_webapi").admitted
    )

    env = {
        **subprocess_env,
        "STEAM_WEBAPI_CALLS_PER_WINDOW": "2",
        "STEAM_WEBAPI_WINDOW_SECONDS": "3",
    }
    result = cli(env, "sync", "--steam-id", steam_id_for(5, seed=33), "--json")

    assert json.loads(result.stdout)["status"] == "completed"
    assert "for steam_webapi budget (2/2 used)" in result.stderr
    assert sim.stats()["rejected_429"] == 0


def test_cancel_command_on_an_idle_library_says_there_is_nothing_to_cancel(
    runtime, register, subprocess_env
):
    """The CLI wraps client.cancel_sync and says what happened."""
    library_id = register(steam_id_for(5, seed=36))
    result = cli(subprocess_env, "cancel", "--library-id", library_id)
    assert result.returncode == 0 and "nothing to cancel" in result.stdout
    status = cli(subprocess_env, "status", "--library-id", library_id)
    assert json.loads(status.stdout)["status"] == "never_synced"


def test_help_and_usage_errors_import_nothing_heavy():
    """`--help` answers without loading Dramatiq, psycopg, redis, requests or pydantic."""
    probe = (
        "import sys\n"
        "from sync_worker import cli\n"
        "for argv in (['--help'], ['sync', '--help'], ['no-such-command']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('dramatiq', 'psycopg', 'redis', 'requests', 'pydantic', 'structlog')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "usage: sync-worker" in result.stdout and "invalid choice" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def run_on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `sync-worker ARGS` with stdout and stderr on a pseudo-terminal; (status, output)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_worker.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout=60), output.decode()


def test_inline_sync_on_a_terminal_draws_a_bar_and_says_when_it_paces(
    runtime, settings, subprocess_env
):
    """Games processed / total, rate and ETA, redrawn in place; a pacing wait is named."""
    env = {
        **{k: v for k, v in subprocess_env.items() if k != "LOG_LEVEL"},
        "STEAM_WEBAPI_CALLS_PER_WINDOW": "5",
        "STEAM_WEBAPI_WINDOW_SECONDS": "3",
    }
    RateLimiter.from_settings(
        runtime.redis,
        settings.model_copy(update={"steam_webapi_calls_per_window": 5}),
        max_wait_s=0,
    ).try_acquire("steam_webapi", weight=4)  # the sync's own call fills the window: it paces
    status, output = run_on_a_terminal(env, "sync", "--steam-id", steam_id_for(1500, seed=34))

    assert status == 0, output
    assert "\r[" in output  # redrawn in place
    assert "1,500/1,500 games" in output and "games/s  ETA 0s" in output
    assert "waiting 0.6 s for steam_webapi budget (pacing: 5/5 of the window used)" in output
    assert "sync.started" not in output  # INFO log lines would break the bar
    assert "\ncompleted: 1500 games (1500 new, 0 updated, 0 removed)" in output


def test_inline_sync_off_a_terminal_prints_no_bar(runtime, subprocess_env):
    """Piped output (and --json) stays plain: no carriage returns, no bar."""
    result = cli(subprocess_env, "sync", "--steam-id", steam_id_for(1500, seed=35))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout + result.stderr
    assert "games/s" not in result.stderr and "[#" not in result.stderr
    assert result.stdout.startswith("completed: 1500 games (1500 new")


def test_status_follow_prints_every_event_until_the_final_one(
    runtime, register, make_engine, subprocess_env
):
    """Off a terminal, JSON lines from the current state to the final event; exit 0 once
    completed. Then `history` lists the library's runs, newest first."""
    library_id = register(steam_id_for(250, seed=37))
    follower = subprocess.Popen(
        [sys.executable, "-m", "sync_worker.cli", "status", "--library-id", library_id, "--follow"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(  # following (subscribed) before the sync starts
        lambda: dict(runtime.redis.pubsub_numsub(keys.PROGRESS_CHANNEL))[
            keys.PROGRESS_CHANNEL.encode()
        ],
        what="the follower's subscription",
    )
    first = make_engine().sync(library_id)
    out, err = follower.communicate(timeout=60)

    events = [json.loads(line) for line in out.splitlines()]
    assert follower.returncode == 0, err
    assert events[-1]["status"] == "completed" and events[-1]["games_processed"] == 250
    assert "syncing" in [e["status"] for e in events]

    second = make_engine().sync(library_id)
    again = cli(subprocess_env, "status", "--library-id", library_id, "--follow")
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "completed"  # at once

    listed = cli(subprocess_env, "history", "--library-id", library_id)
    runs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["run_id"] for r in runs] == [second.run_id, first.run_id]
    assert [(r["status"], r["new_games"], r["total_games"]) for r in runs] == [
        ("completed", 0, 250),
        ("completed", 250, 250),
    ]
    assert all(r["duration_s"] >= 0 and r["finished_at"] for r in runs)


def test_status_follow_on_a_terminal_draws_the_bar_and_ends_with_the_outcome(
    runtime, register, subprocess_env
):
    """On a terminal: the bar (not JSON lines), then one line with how it ended."""
    library_id = register(steam_id_for(40, seed=38))
    events = [
        make_event(library_id, "syncing", progress=50, games_processed=20, total_games=40),
        make_event(
            library_id,
            "failed",
            games_processed=20,
            total_games=40,
            message="Steam is down; the sync will be retried later.",
        ),
    ]
    write_events(runtime.redis, events[:1], ttl_s=60)
    follower = threading.Thread(
        target=lambda: results.append(
            run_on_a_terminal(subprocess_env, "status", "--library-id", library_id, "--follow")
        )
    )
    results: list[tuple[int, str]] = []
    follower.start()
    wait_for(
        lambda: dict(runtime.redis.pubsub_numsub(keys.PROGRESS_CHANNEL))[
            keys.PROGRESS_CHANNEL.encode()
        ],
        what="the follower's subscription",
    )
    write_events(runtime.redis, events[1:], ttl_s=60)
    follower.join(60)

    status, output = results[0]
    assert status == 1  # it did not complete
    assert "\r[" in output and "20/40 games" in output and '{"' not in output
    assert "failed: Steam is down; the sync will be retried later." in output
