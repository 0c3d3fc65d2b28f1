"""The dashboard's endpoints and actions, served by `sync-worker dashboard`, against a real
worker, real servers and the simulator."""

from __future__ import annotations

import concurrent.futures
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from sync_worker import client, keys
from sync_worker.app import get_broker
from sync_worker.simulator import steam_id_for
from sync_worker.simulator.gog import gog_user_id_for
from sync_worker.simulator.ids import ProfileKind
from sync_worker.store import libraries
from tests.conftest import (
    TEST_KEY,
    assert_no_secret,
    cli,
    fetch_all,
    library_status,
    link_gog,
    wait_for,
)
from tests.dashboard.conftest import ADMIN_TOKEN, VIEWER_TOKEN, Dashboard
from tests.workers import dead_letters, sync_and_collect, tick_message

API_READS = (
    "/api/overview",
    "/api/syncs",
    "/api/queues",
    "/api/budget",
    "/api/schedule",
    "/api/dead-letters",
    "/api/history",
)


def post(http: requests.Session, url: str, csrf: str | None = None) -> requests.Response:
    """An action as the page sends it (the session's CSRF token in the header)."""
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return http.post(url, headers=headers, timeout=30)


def dead_letter(runtime, register, sim, seed: int) -> tuple[str, str]:
    """A sync given up on (Steam down past RETRY_MAX): (library id, its message id)."""
    library_id = register(steam_id_for(30, seed=seed))
    before = dead_letters(runtime)
    sim.fault(match="GetOwnedGames", kind="status", status=503, count=4)  # RETRY_MAX=3
    events = sync_and_collect(library_id)
    assert events[-1]["status"] == "failed"
    wait_for(lambda: dead_letters(runtime) == before + 1, 30, "the dead letter")
    return library_id, events[-1]["message_id"]


def test_it_refuses_to_start_without_a_token_in_production_or_off_loopback(subprocess_env):
    """Exit 3 with one line, before touching a server."""
    production = {**subprocess_env, "SYNC_WORKER_ENV": "production"}
    refused = cli(production, "dashboard", "--port", "1")
    assert refused.returncode == 3
    assert refused.stderr.strip().splitlines() == [
        "sync-worker: configuration_error: DASHBOARD_TOKEN must be set to serve the dashboard"
        " in production."
    ]
    everywhere = "0.0.0.0"  # noqa: S104  # refused: that is the point
    public = cli(subprocess_env, "dashboard", "--host", everywhere, "--port", "1")
    assert public.returncode == 3
    assert "DASHBOARD_TOKEN must be set" in public.stderr and everywhere in public.stderr
    viewer_only = {**subprocess_env, "DASHBOARD_READONLY_TOKEN": VIEWER_TOKEN}
    assert cli(viewer_only, "dashboard", "--port", "1").returncode == 3


def test_signing_in_sets_a_signed_httponly_samesite_cookie(dashboard: Dashboard, runtime):
    """Pages redirect to the sign-in form; the token buys a cookie; a forged one buys nothing."""
    anonymous = requests.get(f"{dashboard.url}/history", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=/history")
    assert requests.get(f"{dashboard.url}/api/overview", timeout=10).status_code == 401

    signed_in = requests.post(
        f"{dashboard.url}/login?next=/history",
        data={"token": ADMIN_TOKEN, "name": "ana"},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/history"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    value = signed_in.cookies["sync_worker_dashboard"]
    assert ADMIN_TOKEN not in value
    page = requests.get(
        f"{dashboard.url}/api/overview", cookies={"sync_worker_dashboard": value}, timeout=10
    )
    assert page.status_code == 200 and "queues" in page.json()

    body, signature = value.split(".")
    forged = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB") + "." + signature
    for cookie_value in (forged, body + ".", "garbage"):
        answer = requests.get(
            f"{dashboard.url}/api/overview",
            cookies={"sync_worker_dashboard": cookie_value},
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
    # An open redirect is not on offer.
    away = requests.post(
        f"{dashboard.url}/login?next=//evil.example/",
        data={"token": ADMIN_TOKEN},
        allow_redirects=False,
        timeout=10,
    )
    assert away.headers["location"] == "/"


def test_wrong_tokens_are_answered_slowly_counted_and_then_refused(dashboard: Dashboard, runtime):
    """A second per wrong token; ten from one address within 15 minutes lock it out, even
    with the right token; other addresses are not affected; each one is logged."""
    address = "203.0.113.7"  # through X-Forwarded-For, which uvicorn trusts from loopback
    started = time.monotonic()
    wrong = requests.post(
        f"{dashboard.url}/login",
        data={"token": "guess"},
        headers={"X-Forwarded-For": address},
        timeout=10,
    )
    assert wrong.status_code == 401 and "not a dashboard token" in wrong.text
    assert time.monotonic() - started >= 1.0

    def guess(i: int) -> int:
        return requests.get(
            f"{dashboard.url}/api/overview",
            headers={"Authorization": f"Bearer guess-{i}", "X-Forwarded-For": address},
            timeout=10,
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        assert sorted(pool.map(guess, range(9))) == [401] * 9
    locked = requests.post(
        f"{dashboard.url}/login",
        data={"token": ADMIN_TOKEN},
        headers={"X-Forwarded-For": address},
        timeout=10,
    )
    assert locked.status_code == 429 and "Too many wrong tokens" in locked.text
    elsewhere = requests.get(
        f"{dashboard.url}/api/overview",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Forwarded-For": "198.51.100.2"},
        timeout=10,
    )
    assert elsewhere.status_code == 200

    failures = [
        json.loads(line)
        for line in dashboard.text().splitlines()
        if '"dashboard.login_failed"' in line and address in line
    ]
    assert [f["failures_from_address"] for f in failures] == list(range(1, 11))
    assert all("guess" not in json.dumps(f) for f in failures)


def test_a_viewer_sees_everything_and_can_do_nothing(dashboard: Dashboard, runtime, register):
    """Every read answers the read-only token; every action refuses it (403, read_only)."""
    library_id = register(steam_id_for(5, seed=401))
    viewer = dashboard.session(VIEWER_TOKEN)
    for path in (*API_READS, f"/api/libraries/{library_id}", "/", "/history"):
        assert viewer.get(f"{dashboard.url}{path}", timeout=30).status_code == 200, path
    for path in (
        f"/api/syncs/{library_id}/cancel",
        "/api/dead-letters/requeue-all",
        "/api/dead-letters/some-id/requeue",
        "/api/dead-letters/some-id/discard",
    ):
        answer = post(viewer, f"{dashboard.url}{path}", viewer.csrf)
        assert answer.status_code == 403, path
        assert answer.json()["error"]["code"] == "read_only"
    page = viewer.get(f"{dashboard.url}/", timeout=30).text
    assert '"can_act": false' in page and "read-only" in page


def test_actions_need_the_sessions_csrf_token(dashboard: Dashboard, runtime, register):
    """A cookie alone acts on nothing: the page's token must come back in X-CSRF-Token; a
    program with a bearer token needs none (nothing ambient is sent with it)."""
    library_id = register(steam_id_for(5, seed=402))
    admin = dashboard.session(ADMIN_TOKEN)
    url = f"{dashboard.url}/api/syncs/{library_id}/cancel"
    for csrf in (None, "", "forged"):
        answer = post(admin, url, csrf)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "csrf_failed"
    other_session = dashboard.session(ADMIN_TOKEN)
    assert post(admin, url, other_session.csrf).status_code == 403

    assert post(admin, url, admin.csrf).json() == {
        "library_id": library_id,
        "cancelled": False,  # nothing was queued
    }
    bearer = requests.post(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert bearer.status_code == 200


def test_every_read_answers_what_the_workers_wrote(
    dashboard: Dashboard, runtime, register, worker, sim
):
    """Syncs, queues, workers, budget, schedule, history (filtered and paged), a library,
    search: each answers what is true, and the dashboard never calls Steam."""
    synced = [register(steam_id_for(n, seed=410 + n)) for n in (40, 60, 80)]
    for library_id in synced:
        assert sync_and_collect(library_id)[-1]["status"] == "completed"
    private = register(steam_id_for(10, ProfileKind.PRIVATE, seed=414))
    assert sync_and_collect(private)[-1]["status"] == "failed"
    never_synced = [register(steam_id_for(5, seed=415 + i)) for i in range(2)]
    gog_user = gog_user_id_for(5, seed=419)
    gog_library = link_gog(runtime.settings, gog_user)  # linked, never synced
    wait_for(lambda: runtime.redis.zcard(keys.WORKERS_KEY), 10, "a worker heartbeat")
    steam_calls = sim.stats()["calls"]

    admin = dashboard.session(ADMIN_TOKEN)

    def get(path: str, **params: Any) -> Any:
        answer = admin.get(f"{dashboard.url}{path}", params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    overview = get("/api/overview")
    assert {run["library_id"] for run in overview["recent"]} == {*synced, private}
    by_library = {run["library_id"]: run for run in overview["recent"]}
    assert [by_library[i]["total_games"] for i in synced] == [40, 60, 80]
    assert by_library[private]["error"]["code"] == "private_profile"
    assert overview["active"] == [] and overview["active_counts"] == {"queued": 0, "syncing": 0}
    assert {w["pid"] for w in overview["workers"]} and all(
        set(w["queues"]) == {"high", "default"} for w in overview["workers"]
    )
    assert overview["queues"]["high"] == {
        "ready": 0,
        "prefetched": 0,
        "delayed": 0,
        "backlog": 0,
        "dead": 0,
    }
    webapi = next(b for b in overview["budget"] if b["bucket"] == "steam_webapi")
    calls_made = sum(
        n
        for endpoint, n in steam_calls.items()
        if endpoint != "appdetails" and "gog" not in endpoint
    )
    assert webapi["used"] == webapi["daily_used"] == calls_made > 0
    assert webapi["limit"] == 100_000 and webapi["backoff_until"] is None
    assert overview["schedule"]["due_now"] == 3  # the three never synced
    assert overview["schedule"]["in_backoff"] == 1  # the private profile
    assert overview["dead_letters"] == {"count": 0, "latest": []}
    for path, part in (
        ("/api/syncs", "recent"),
        ("/api/queues", "queues"),
        ("/api/budget", "budget"),
        ("/api/schedule", "schedule"),
    ):
        assert get(path)[part] == overview[part], path
    assert [w["id"] for w in get("/api/queues")["workers"]] == [
        w["id"] for w in overview["workers"]
    ]

    everything = get("/api/history")["runs"]
    assert len(everything) == 4 and get("/api/history")["older"] is None
    assert [run["library_id"] for run in get("/api/history", status="private")["runs"]] == [private]
    assert len(get("/api/history", status="completed")["runs"]) == 3
    assert [r["library_id"] for r in get("/api/history", code="private_profile")["runs"]] == [
        private
    ]
    assert [r["library_id"] for r in get("/api/history", library_id=synced[1])["runs"]] == [
        synced[1]
    ]
    assert get("/api/history", sync_type="auto")["runs"] == []
    paged, cursor = [], None
    while True:
        page = get("/api/history", limit=3, **({"before": cursor} if cursor else {}))
        paged += page["runs"]
        cursor = page["older"]
        if cursor is None:
            break
    assert [r["run_id"] for r in paged] == [r["run_id"] for r in everything]
    for bad in ({"status": "nope"}, {"limit": "0"}, {"before": "yesterday"}):
        answer = admin.get(f"{dashboard.url}/api/history", params=bad, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "malformed_message"

    library = get(f"/api/libraries/{synced[2]}")
    assert library["library"]["owned_games"] == 80 == library["library"]["total_games"]
    assert library["library"]["sync_status"] == "completed"
    assert [run["status"] for run in library["runs"]] == ["completed"]
    assert library["event"]["status"] == "completed"
    html = admin.get(f"{dashboard.url}/libraries/{synced[2]}", timeout=10).text
    assert steam_id_for(80, seed=490) in html and "Games owned now" in html

    steam_id = steam_id_for(60, seed=470)
    for text in (
        steam_id,
        f"https://steamcommunity.com/profiles/{steam_id}/",
        synced[1],
        synced[1].upper(),
    ):
        assert get("/api/search", q=text) == {"library_id": synced[1]}, text
    for text, status, code in (
        ("gabelogannewell", 400, "not_searchable"),
        (steam_id_for(61, seed=1), 404, "unknown_library"),
        ("00000000-0000-0000-0000-000000000000", 404, "unknown_library"),
        ("<script>", 400, "invalid_steam_id"),
    ):
        answer = admin.get(f"{dashboard.url}/api/search", params={"q": text}, timeout=10)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), text
    assert get("/api/search", q=gog_user) == {"library_id": gog_library}
    found = admin.get(f"{dashboard.url}/search", params={"q": steam_id}, allow_redirects=False)
    assert found.headers["location"] == f"/libraries/{synced[1]}"

    assert sim.stats()["calls"] == steam_calls  # reading the dashboard cost Steam nothing
    for library_id in never_synced:
        assert library_status(runtime, library_id) == "never_synced"  # and wrote nothing


def test_requeue_puts_a_dead_letter_back_and_a_worker_completes_it(
    dashboard: Dashboard, runtime, register, worker, sim
):
    """The letter is listed with its code, sentence and attempts; requeueing it from the
    dashboard completes the sync; each action is logged with who did it."""
    library_id, message_id = dead_letter(runtime, register, sim, seed=420)
    admin = dashboard.session(ADMIN_TOKEN, name="ana")
    listed = admin.get(f"{dashboard.url}/api/dead-letters", timeout=10).json()
    assert listed["count"] == 1
    [letter] = listed["latest"]
    assert letter["message_id"] == message_id and letter["args"] == [library_id]
    assert letter["error"]["code"] == "steam_unavailable" and letter["error"]["message"]
    assert letter["retries"] == 3

    answer = post(admin, f"{dashboard.url}/api/dead-letters/{message_id}/requeue", admin.csrf)
    assert answer.json() == {"message_id": message_id, "requeued": True}
    wait_for(lambda: library_status(runtime, library_id) == "completed", 30, "the requeued sync")
    assert admin.get(f"{dashboard.url}/api/dead-letters", timeout=10).json()["count"] == 0
    again = post(admin, f"{dashboard.url}/api/dead-letters/{message_id}/requeue", admin.csrf)
    assert again.status_code == 404 and again.json()["error"]["code"] == "unknown_dead_letter"

    wait_for(
        lambda: '"dashboard.action"' in dashboard.text() and message_id in dashboard.text(),
        10,
        "the action's log line",
    )
    [logged] = [
        json.loads(line)
        for line in dashboard.text().splitlines()
        if '"dashboard.action"' in line and message_id in line
    ]
    assert logged["action"] == "requeue" and logged["who"] == "ana" and logged["role"] == "admin"
    assert logged["requeued"] is True and logged["address"] == "127.0.0.1"


def test_requeue_all_and_discard(dashboard: Dashboard, runtime, register, worker, sim):
    """Requeue all sends every letter back (and they complete); discard removes one for good."""
    first, _ = dead_letter(runtime, register, sim, seed=430)
    second, _ = dead_letter(runtime, register, sim, seed=431)
    admin = dashboard.session(ADMIN_TOKEN)
    assert admin.get(f"{dashboard.url}/api/dead-letters", timeout=10).json()["count"] == 2
    answer = post(admin, f"{dashboard.url}/api/dead-letters/requeue-all", admin.csrf)
    assert answer.json() == {"requeued": 2, "kept": []}
    wait_for(
        lambda: {library_status(runtime, first), library_status(runtime, second)} == {"completed"},
        30,
        "both requeued syncs",
    )

    _, doomed = dead_letter(runtime, register, sim, seed=432)
    answer = post(admin, f"{dashboard.url}/api/dead-letters/{doomed}/discard", admin.csrf)
    assert answer.json() == {"message_id": doomed, "discarded": True}
    assert dead_letters(runtime) == 0


def test_cancel_stops_a_running_sync(dashboard: Dashboard, runtime, register, worker):
    """Cancel from the dashboard while a worker writes 50,000 games: it ends `cancelled`."""
    library_id = register(steam_id_for(50_000, seed=440))
    admin = dashboard.session(ADMIN_TOKEN)
    client.request_sync(library_id)
    events = client.iter_progress(library_id, timeout_s=60)
    next(e for e in events if e["status"] == "syncing")
    answer = post(admin, f"{dashboard.url}/api/syncs/{library_id}/cancel", admin.csrf)
    assert answer.json() == {"library_id": library_id, "cancelled": True}
    final = [e for e in events if e["status"] != "syncing"][-1]
    assert final["status"] == "cancelled"
    stored = fetch_all(
        runtime, "SELECT count(*) FROM library_games WHERE library_id = %s", library_id
    )[0][0]
    assert stored == final["games_processed"] < 50_000


def test_the_live_feed_streams_the_overview_and_named_progress(
    dashboard: Dashboard, runtime, register, worker
):
    """One stream: the overview first, then every progress event with the library's name
    and the run's attempt, to a completed one."""
    with runtime.pool.connection() as conn:
        library_id = libraries.register_library(conn, "steam", steam_id_for(3_000, seed=450), "Ana")
    admin = dashboard.session(ADMIN_TOKEN)
    with admin.get(f"{dashboard.url}/api/events", stream=True, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        first = read_event(lines)
        assert first[0] == "overview" and "queues" in first[1]
        client.request_sync(library_id)
        progress = []
        while not progress or progress[-1]["status"] != "completed":
            kind, data = read_event(lines)
            if kind == "progress" and data["library_id"] == library_id:
                progress.append(data)
    statuses = [event["status"] for event in progress]
    assert statuses[0] == "queued" and "syncing" in statuses
    syncing = [e for e in progress if e["status"] == "syncing"]
    assert all(e["display_name"] == "Ana" and e["attempt"] == 1 for e in syncing)
    assert all(e["queue"] == "high" and e["sync_type"] == "manual" for e in syncing)
    assert progress[-1]["games_processed"] == 3_000


def read_event(lines: Any) -> tuple[str, dict[str, Any]]:
    """The next server-sent event (comments and retry hints skipped)."""
    kind, data = "message", None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            return kind, data
    raise AssertionError("the stream ended")


def test_no_secret_reaches_a_page_its_json_or_its_log(
    dashboard: Dashboard, dashboard_env, runtime, register, worker, sim
):
    """The Steam key, both tokens and the servers' URLs appear nowhere the dashboard answers."""
    dead_letter(runtime, register, sim, seed=460)
    admin = dashboard.session(ADMIN_TOKEN)
    library_id = fetch_all(runtime, "SELECT library_id::text FROM user_libraries")[0][0]
    answers = [
        admin.get(f"{dashboard.url}{path}", timeout=30).text
        for path in (*API_READS, "/", "/history", f"/libraries/{library_id}", "/login")
    ]
    answers.append(requests.get(f"{dashboard.url}/login", timeout=10).text)
    secrets = (
        TEST_KEY,
        ADMIN_TOKEN,
        VIEWER_TOKEN,
        dashboard_env["DATABASE_URL"],
        dashboard_env["REDIS_URL"],
    )
    for text in (*answers, dashboard.text()):
        assert_no_secret(text, "the dashboard", *secrets)


def test_the_schedule_shows_the_last_tick_and_what_it_queued(
    dashboard: Dashboard, runtime, register, worker
):
    """A scheduler tick (the periodiq message, run by the worker) leaves its note: when,
    what it queued, when the next one is due; the page's JSON carries it."""
    due = [register(steam_id_for(5, seed=470 + i)) for i in range(2)]
    admin = dashboard.session(ADMIN_TOKEN)
    assert admin.get(f"{dashboard.url}/api/schedule", timeout=10).json()["schedule"] == {
        "due_now": 2,
        "due_next_hour": 0,
        "in_backoff": 0,
        "next_backoff_retry_at": None,
        "last_tick": None,
    }
    get_broker().enqueue(tick_message())
    wait_for(
        lambda: {library_status(runtime, i) for i in due} == {"completed"}, 30, "the tick's syncs"
    )
    tick = admin.get(f"{dashboard.url}/api/schedule", timeout=10).json()["schedule"]["last_tick"]
    assert tick["ran"] is True and tick["queued"] == 2 and tick["budget"] >= 2
    at, next_at = datetime.fromisoformat(tick["at"]), datetime.fromisoformat(tick["next_tick_at"])
    assert abs((datetime.now(UTC) - at).total_seconds()) < 30
    assert timedelta(0) < next_at - at <= timedelta(minutes=5)  # AUTO_SYNC_CRON: every 5 min


def test_dashboard_demo_reads_the_demos_sandbox(subprocess_env, tmp_path):
    """`sync-worker dashboard --demo` starts on the demo's sandbox (its database and Redis
    db on the embedded servers, migrated if the demo never ran) and answers, open on
    loopback."""
    env = {k: v for k, v in subprocess_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    served = Dashboard(env, tmp_path / "demo-dashboard.log", "--demo")
    try:
        overview = requests.get(f"{served.url}/api/overview", timeout=30)
        assert overview.status_code == 200 and set(overview.json()["queues"]) == {
            "high",
            "default",
            "low",
        }
    finally:
        log = served.stop()
    assert "open to anyone on this machine" in log
