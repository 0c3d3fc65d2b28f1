"""What a web process pays to import the client, beside the libraries it stands on.

Each import runs in a fresh interpreter (nothing cached in `sys.modules`), the
candidates alternating round by round so a busy moment hits them all alike; figures are
medians. The baselines import only third-party libraries: the three named in the layers
issue (Dramatiq with its Redis broker, redis, psycopg), and every third-party library the
client loads. The layers issue hoped for the client within 1.3x of the first: where it
stands, and why, is in docs/performance.md.

    python -m bench.imports [--rounds N] [--source DIR]

`--source` measures the `sync_worker` of another checkout (an older commit, say).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15

CANDIDATES = {
    "client": "import sync_worker.client",
    "aio": "import sync_worker.aio",
    "baseline_dramatiq_redis_psycopg": "import dramatiq, dramatiq.brokers.redis, redis, psycopg",
    "baseline_client_libraries": (
        "import dramatiq, dramatiq.brokers.redis, redis, redis.asyncio, psycopg, psycopg_pool,"
        " pydantic_settings, structlog, requests, orjson"
    ),
    "everything": "import sync_worker.commands",  # what the CLI loads to run a command
}

# Prints the import's wall time and what it loaded, as JSON.
PROBE = """\
import json, sys, time
started = time.perf_counter()
{statement}
elapsed = time.perf_counter() - started
ours = sorted(m for m in sys.modules if m == "sync_worker" or m.startswith("sync_worker."))
print(json.dumps({{"s": elapsed, "ours": ours}}))
"""


def measure(statement: str, source: Path) -> dict[str, object]:
    """Import `statement` once in a fresh interpreter whose `sync_worker` comes from `source`."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(statement=statement)],
        cwd=source,  # first on sys.path: `source`'s package wins over the installed one
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    figures: dict[str, object] = json.loads(result.stdout)
    return figures


def main(rounds: int = ROUNDS, source: Path = ROOT) -> dict[str, object]:
    """Median import time (ms) of each candidate, module counts, and the client's ratios."""
    times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    modules: dict[str, list[str]] = {}
    for name, statement in CANDIDATES.items():  # warm-up: the OS caches the files
        modules[name] = measure(statement, source)["ours"]  # type: ignore[assignment]
    for _ in range(rounds):
        for name, statement in CANDIDATES.items():
            times[name].append(float(measure(statement, source)["s"]))  # type: ignore[arg-type]
    medians = {name: round(statistics.median(values) * 1000, 1) for name, values in times.items()}
    client = medians["client"]
    figures: dict[str, object] = {
        "source": str(source),
        "rounds": rounds,
        "median_ms": medians,
        "package_modules_loaded": {name: len(found) for name, found in modules.items()},
        "client_vs_dramatiq_redis_psycopg": round(
            client / medians["baseline_dramatiq_redis_psycopg"], 2
        ),
        "client_vs_client_libraries": round(client / medians["baseline_client_libraries"], 2),
    }
    print(f"import time, fresh interpreter, median of {rounds} (source {source}):")
    for name, ms in medians.items():
        count = figures["package_modules_loaded"][name]  # type: ignore[index]
        print(f"  {name:34} {ms:7.1f} ms   {count:3} sync_worker modules")
    print(
        f"  client / (dramatiq, redis, psycopg)  {figures['client_vs_dramatiq_redis_psycopg']}x"
        f" (target <= 1.3x); client / its libraries {figures['client_vs_client_libraries']}x"
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--source", type=Path, default=ROOT)
    options = parser.parse_args()
    main(options.rounds, options.source.resolve())
