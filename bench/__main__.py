"""Run every benchmark: `python -m bench` (`make bench`); figures to bench/results/latest.json."""

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from . import (
    big_sync,
    dashboard,
    enrichment,
    fleet,
    generic_plans,
    gog,
    imports,
    middleware,
    peer,
    rate_limit,
    scheduling,
    sizing,
)

RESULTS = Path(__file__).parent / "results" / "latest.json"

results = {
    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
}
for part in (
    imports,
    big_sync,
    gog,
    generic_plans,
    peer,
    fleet,
    rate_limit,
    middleware,
    scheduling,
    enrichment,
    dashboard,
    sizing,
):
    results[part.__name__.removeprefix("bench.")] = part.main()
    print()
RESULTS.parent.mkdir(exist_ok=True)
RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
print(f"figures written to {RESULTS}")
