"""The asyncio client: one shared Redis subscription however many watchers, the current
state first, a clean end after the final event, and recovery from a lost subscription."""

from __future__ import annotations

import asyncio
import json

from structlog.testing import capture_logs

from sync_worker import keys
from sync_worker.aio import AsyncClient
from sync_worker.app import reset_broker
from sync_worker.simulator import steam_id_for
from sync_worker.sync.progress import make_event, write_events


def subscribers(runtime) -> int:
    return int(
        dict(runtime.redis.pubsub_numsub(keys.PROGRESS_CHANNEL))[keys.PROGRESS_CHANNEL.encode()]
    )


async def collect(iterator, into: list[dict] | None = None) -> list[dict]:
    """Every event of an async iterator (into `into` as they come, when given)."""
    events = [] if into is None else into
    async for event in iterator:
        events.append(event)
    return events


def test_many_watchers_share_one_subscription_and_see_the_whole_sync(
    runtime, register, make_engine
):
    library_id = register(steam_id_for(450, seed=81))
    engine = make_engine()
    every_library: list[dict] = []

    async def scenario() -> tuple[list[list[dict]], int]:
        client = AsyncClient()
        watchers = [asyncio.create_task(collect(client.progress(library_id))) for _ in range(3)]
        firehose = asyncio.create_task(
            collect(client.progress(None, until_done=False), every_library)
        )
        await asyncio.sleep(0.3)  # all four watching
        shared = subscribers(runtime)
        await asyncio.to_thread(engine.sync, library_id)
        streams = await asyncio.wait_for(asyncio.gather(*watchers), 30)
        firehose.cancel()
        await client.aclose()
        return streams, shared

    streams, shared = asyncio.run(scenario())

    assert shared == 1  # four watchers, one Redis subscription
    assert streams[0] == streams[1] == streams[2]
    statuses = [event["status"] for event in streams[0]]
    assert statuses[0] == "starting" and statuses[-1] == "completed"
    assert statuses.count("syncing") == 5  # 450 games in batches of 100
    assert streams[0][-1]["games_processed"] == 450
    assert [e for e in every_library if e["library_id"] == library_id] == streams[0]
    assert subscribers(runtime) == 0  # closed with the client


def test_a_watcher_joining_late_gets_the_current_state_and_ends_at_once(runtime, register):
    library_id = register(steam_id_for(5))
    done = make_event(library_id, "completed", progress=100, games_processed=5, total_games=5)
    write_events(runtime.redis, [done], ttl_s=60)

    async def scenario() -> list[dict]:
        client = AsyncClient()
        try:
            return [event async for event in client.progress(library_id)]
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == [json.loads(json.dumps(done))]


def test_a_lost_subscription_is_recovered_without_losing_the_end(runtime, register):
    """Redis drops the subscriber; the final event published meanwhile still arrives."""
    library_id = register(steam_id_for(5))

    async def scenario() -> list[dict]:
        client = AsyncClient()
        watcher = asyncio.create_task(collect(client.progress(library_id)))
        await asyncio.sleep(0.3)
        killed = runtime.redis.client_kill_filter(_type="pubsub")
        assert killed >= 1
        final = make_event(library_id, "completed", progress=100, games_processed=5, total_games=5)
        write_events(runtime.redis, [final], ttl_s=60)  # while nobody is subscribed
        events = await asyncio.wait_for(watcher, 10)
        await client.aclose()
        return events

    events = asyncio.run(scenario())
    assert [e["status"] for e in events] == ["completed"]


def test_request_status_and_cancel_from_the_event_loop(runtime, register):
    reset_broker()
    library_id = register(steam_id_for(5))

    async def scenario() -> tuple[str, dict, bool, bool]:
        client = AsyncClient()
        try:
            message_id = await client.request_sync(library_id)
            status = await client.get_status(library_id)
            cancelled = await client.cancel_sync(library_id)
            again = await client.cancel_sync(library_id)
            return message_id, status, cancelled, again
        finally:
            await client.aclose()

    message_id, status, cancelled, again = asyncio.run(scenario())
    assert len(message_id) == 36 and status["status"] == "queued"
    assert cancelled is True and again is False  # the queued one is already cancelled
    reset_broker()


def test_a_slow_watcher_of_every_library_still_ends_each_with_its_final_state(runtime):
    """3,000 events for 60 libraries while the watcher of all of them is busy: it skips
    snapshots it had no time for (counted and logged) but gets every library's last one;
    a subscription lost meanwhile is made up by re-reading the libraries it watches."""
    libraries = [f"00000000-0000-0000-0000-{n:012d}" for n in range(60)]

    def events(status: str, n: int) -> list[dict]:
        return [make_event(lib, status, progress=n, games_processed=n) for lib in libraries]

    async def scenario() -> tuple[dict[str, dict], int, list[dict]]:
        client = AsyncClient()
        seen: dict[str, dict] = {}
        stream = client.progress(None, until_done=False)
        first = await anext_with_publish(stream, runtime, events("starting", 0))
        seen[first["library_id"]] = first
        with capture_logs() as logs:
            for n in range(1, 49):  # the watcher is not reading: 2,880 events pile up
                write_events(runtime.redis, events("syncing", n), ttl_s=60)
            await asyncio.sleep(0.5)
            runtime.redis.client_kill_filter(_type="pubsub")  # and the subscription is lost
            write_events(runtime.redis, events("completed", 100), ttl_s=60)  # while away
            while len([e for e in seen.values() if e["status"] == "completed"]) < 60:
                event = await asyncio.wait_for(anext(stream), 10)
                seen[event["library_id"]] = event
        await stream.aclose()
        await client.aclose()
        return seen, client.skipped_events, logs

    seen, skipped, logs = asyncio.run(scenario())
    assert {lib: e["status"] for lib, e in seen.items()} == dict.fromkeys(libraries, "completed")
    assert skipped > 2_000
    assert any(log["event"] == "progress.watcher_behind" for log in logs)


async def anext_with_publish(stream, runtime, events: list[dict]) -> dict:
    """Start the stream (subscribed), publish `events`, and return the first one received."""
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)
    write_events(runtime.redis, events, ttl_s=60)
    return await asyncio.wait_for(first, 10)
