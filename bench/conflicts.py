"""What conflicting saves of one large session cost: ``python bench/conflicts.py``.

Starts its own Redis (like ``peers.py``), stores one session of ``--size`` bytes of JSON (random
text, which compression cannot shrink much), then runs ``--writers`` threads that each read the
session and save a change of their own key in it, ``--saves`` times, all at once: every save
but one of each round conflicts, merges and retries. It prints

* the save-script calls (``EVALSHA``/``EVAL`` from ``INFO commandstats``) and the reads (``GET``),
* the bytes through Redis (deltas of ``INFO stats`` ``total_net_input_bytes`` and
  ``total_net_output_bytes``), against the bytes the saves themselves hold (saves x record size),
* the slowest save, the median save, and the saves that gave up (``RedisStoreError``),
* the lost updates: keys whose last value is not the one their writer last saved (must be 0;
  a writer whose last save gave up is not counted).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redis_servers import RedisServer


def configure_django(url: str) -> None:
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-" + "k" * 50,
        INSTALLED_APPS=["django.contrib.sessions", "django_redisstore"],
        REDISSTORE_URL=url,
        USE_TZ=True,
    )
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--saves", type=int, default=10, help="saves per writer")
    parser.add_argument("--size", type=int, default=300_000, help="bytes of session JSON")
    options = parser.parse_args()

    logging.getLogger("django_redisstore").setLevel(logging.ERROR)  # give-ups: counted below
    with RedisServer(directory=Path(tempfile.mkdtemp(prefix="redisstore-bench-"))) as server:
        configure_django(server.url)
        from django_redisstore import codec, keys
        from django_redisstore.exceptions import RedisStoreError
        from django_redisstore.session import SessionStore

        admin = server.client()
        seed = SessionStore()
        seed["data"] = secrets.token_urlsafe(options.size * 3 // 4)
        seed.save()
        session_key = seed.session_key
        assert session_key is not None
        record = admin.strlen(keys.session_name(keys.session_id(session_key)))

        timings: list[float] = []
        gave_up: list[str] = []
        last_saved: dict[str, int] = {}
        lock = threading.Lock()
        start = threading.Barrier(options.writers)

        def writer(i: int) -> None:
            start.wait()
            for n in range(options.saves):
                store = SessionStore(session_key)
                store.load()
                store[f"w{i}"] = n
                began = time.perf_counter()
                try:
                    store.save()
                except RedisStoreError as e:
                    with lock:
                        gave_up.append(str(e))
                    continue
                finally:
                    with lock:
                        timings.append(time.perf_counter() - began)
                with lock:
                    last_saved[f"w{i}"] = n

        before_stats, before_calls = admin.info("stats"), admin.info("commandstats")
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(options.writers)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        after_stats, after_calls = admin.info("stats"), admin.info("commandstats")

        def calls(*names: str) -> int:
            return sum(
                after_calls.get(f"cmdstat_{n}", {}).get("calls", 0)
                - before_calls.get(f"cmdstat_{n}", {}).get("calls", 0)
                for n in names
            )

        into = after_stats["total_net_input_bytes"] - before_stats["total_net_input_bytes"]
        out = after_stats["total_net_output_bytes"] - before_stats["total_net_output_bytes"]
        final = SessionStore(session_key).load()
        lost = [k for k, v in last_saved.items() if final.get(k) != v]
        saves = options.writers * options.saves
        mb = 1e6
        print(f"record format {codec.VERSION}: {options.writers} writers x {options.saves} saves")
        print(f"session: {len(seed['data']) / 1000:.0f} KB of JSON, {record / 1000:.0f} KB stored")
        print(f"wall time               {wall:8.2f} s")
        print(f"save-script calls       {calls('evalsha', 'eval'):8d}  (saves: {saves})")
        print(f"GET calls (in scripts too) {calls('get'):6d}")
        print(f"bytes into Redis        {into / mb:8.1f} MB")
        print(f"bytes out of Redis      {out / mb:8.1f} MB")
        held = saves * record / mb
        print(f"through Redis in all    {(into + out) / mb:8.1f} MB  (saves hold {held:.1f} MB)")
        print(f"slowest save            {max(timings):8.3f} s")
        print(f"median save             {statistics.median(timings):8.3f} s")
        print(f"saves that gave up      {len(gave_up):8d}")
        print(f"lost updates            {len(lost):8d}")
        if gave_up:
            print(f"  e.g. {gave_up[0]}")


if __name__ == "__main__":
    main()
