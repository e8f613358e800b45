"""Profile one engine's hot path: ``python bench/profile.py [WORKLOAD] [--engine E]``.

Starts its own Redis (like ``peers.py``), runs the workload on the small session for a few
seconds under pyinstrument and prints the call tree (``--html FILE`` writes it as a page).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers
from tests.redis_servers import RedisServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", default="rmw", choices=list(peers.WORKLOADS))
    parser.add_argument("--engine", default="redisstore", choices=list(peers.ENGINES))
    parser.add_argument("--size", default="small", choices=("small", "large"))
    parser.add_argument("--mode", default="sync", choices=("sync", "async"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--html", type=Path)
    args = parser.parse_args()
    from pyinstrument import Profiler

    rng = random.Random(6)
    sizes = {"small": peers.small_session(rng), "large": peers.large_session(rng)}
    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="redisstore-profile-") as tmp:
            peers.configure_django(server.url, Path(tmp))
            bench = peers.Bench(server.url, {args.size: sizes[args.size]})
            key = bench.seed("redisstore", args.size)
            from django_redisstore import keys

            bench.blobs[args.size] = bench.floor.get(keys.session_name(keys.session_id(key)))
            if args.mode == "sync":
                cell = bench.sync_cell(args.engine, args.workload, args.size)
            else:
                cell = bench.async_cell(args.engine, args.workload, args.size)
            bench.run_slice(cell, 0.5)  # warm up
            profiler = Profiler(interval=0.0002)
            profiler.start()
            started = time.perf_counter()
            rate, _ = bench.run_slice(cell, args.seconds)
            profiler.stop()
            print(f"{rate:.0f} ops/s under the profiler ({time.perf_counter() - started:.1f}s)")
            if args.html:
                args.html.write_text(profiler.output_html())
            else:
                print(profiler.output_text(unicode=True, color=False, show_all=False))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
