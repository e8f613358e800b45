"""Benchmark: what a signed-in session costs in Redis, its record and its user-index entry.

Starts its own ``redis-server`` (the tests' binary), then for users with 1, 2, 5, 20, 200 and
1,000 sessions each, creates that many signed-in sessions of ``bench/peers.py``'s small data
through the engine and measures with ``MEMORY USAGE ... SAMPLES 0``: the session record, and
the user's index (a sorted set) divided by its entries; and for a user who had 5,000 sessions
and has ended all but 200 (a churned index). Redis keeps a small sorted set as a
listpack and a large one (over ``zset-max-listpack-entries``, 128 by default) as a skiplist
and a dict, so the per-entry cost depends on how many sessions a user has.

Run from the repository root::

    python bench/index_memory.py      # writes bench/results/index-memory.json

The figures of docs/scaling.rst ("How much memory") come from this script; that run is kept
as ``bench/results/readme-index-memory.json``.
"""

from __future__ import annotations

import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import small_session  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402

SESSIONS_PER_USER = (1, 2, 5, 20, 200, 1000)
#: A user who had 5,000 sessions and has 200 left (as a benchmark's one test user ends up).
CHURN = (5000, 200)
RESULTS = ROOT / "bench" / "results" / "index-memory.json"


def configure(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-" + "k" * 50,
        USE_TZ=True,
        INSTALLED_APPS=["django_redisstore"],
        SESSION_ENGINE="django_redisstore.session",
        REDISSTORE_URL=url,
        REDISSTORE_KEY_PREFIX="bench",
    )
    django.setup()


def measure(count: int, user: str, rng: random.Random, end: int = 0) -> dict[str, Any]:
    """Create ``count`` signed-in sessions of one user, then end ``end`` of them (a churned
    index: Redis does not shrink a sorted set's dict); bytes of a record and per index entry."""
    from django_redisstore import keys
    from django_redisstore.clients import get_client
    from django_redisstore.session import SessionStore

    client = get_client()
    stores = []
    for _ in range(count):
        store = SessionStore()
        store.update(small_session(rng) | {"_auth_user_id": user})
        store.save()
        stores.append(store)
    for store in stores[:end]:
        store.delete()
    count -= end
    records = [keys.session_name(keys.session_id(str(s.session_key))) for s in stores[end:]]
    index = keys.user_index_name(user)
    entries = client.zcard(index)
    assert entries == count, (entries, count)
    record_bytes = sum(client.memory_usage(name, samples=0) or 0 for name in records) / count
    index_bytes = client.memory_usage(index, samples=0) or 0
    encoding = client.object("encoding", index)
    return {
        "sessions_per_user": count,
        "ended_before": end,
        "record_bytes": round(record_bytes, 1),
        "index_bytes": index_bytes,
        "index_bytes_per_entry": round(index_bytes / count, 1),
        "index_encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
        "bytes_per_signed_in_session": round(record_bytes + index_bytes / count, 1),
    }


def main() -> None:
    import django
    import redis

    rng = random.Random(6)
    with RedisServer() as server:
        configure(server.url)
        version = server.client().info("server")["redis_version"]
        rows = [measure(n, str(1000 + n), rng) for n in SESSIONS_PER_USER]
        rows.append(measure(CHURN[0], "churned", rng, end=CHURN[0] - CHURN[1]))
    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "redis": version,
            "python": platform.python_version(),
            "django": django.__version__,
            "redis_py": redis.__version__,
            "command": "python bench/index_memory.py",
        },
        "rows": rows,
    }
    header = ("sessions/user", "ended", "record", "index/entry", "encoding", "per session")
    print("{:>13}  {:>5}  {:>7}  {:>11}  {:>9}  {:>11}".format(*header))
    for row in rows:
        print(
            f"{row['sessions_per_user']:>13}  {row['ended_before']:>5}  {row['record_bytes']:>7}  "
            f"{row['index_bytes_per_entry']:>11}  {row['index_encoding']:>9}  "
            f"{row['bytes_per_signed_in_session']:>11}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
