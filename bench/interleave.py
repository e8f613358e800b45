"""Where a read-modify-write's time goes beyond the raw floor: ``python bench/interleave.py``.

Starts its own Redis (like ``peers.py``) and times, in turns (``--rounds`` rounds of 0.2 s
slices, medians), for the small session (``--size large`` for the large one):

``floor``
    the floor of ``peers.py``: a ``GET`` and a ``SET ... EX`` of the stored bytes.
``engine work``
    this engine's own work for one read-modify-write without any I/O: the read and the save
    flows fed the replies Redis would give (verify, decompress, decode; encode, compress, sign).
``floor + spin``
    the floor's two commands with a busy wait of the engine work's duration between them.
``floor + engine work``
    the floor's two commands with the engine work between them.
``redisstore rmw``
    the real thing, as ``peers.py`` runs it.

Each with its wall time and this process's CPU time per operation. ``floor + spin`` costs the
floor plus the spin; ``floor + engine work`` costs much more than the floor plus the work, as
much as a real read-modify-write: the engine's JSON, zlib and hashing leave redis-py's and the
interpreter's working set colder, and the commands after them pay for it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers
from tests.redis_servers import RedisServer


def drive(flow: Generator[Any, Any, Any], reply: Any) -> Any:
    """Run a flow to its end, answering every batch with ``[reply]``."""
    try:
        flow.send(None)
        while True:
            flow.send([reply])
    except StopIteration as done:
        return done.value


def engine_work(bench: peers.Bench, size: str) -> tuple[Callable[[], None], str, bytes]:
    """This engine's own work for one read-modify-write of a session of ``size``, without I/O
    (run it inside ``bench.engine_settings("redisstore")``); also the session's key and the
    bytes stored for it."""
    from django_redisstore import keys
    from django_redisstore.session import SessionStore

    key = bench.seed("redisstore", size)
    blob = bench.floor.get(keys.session_name(keys.session_id(key)))
    assert isinstance(blob, bytes)

    def work() -> None:
        store = SessionStore(key)
        store._session_cache = drive(store._load_flow(), blob)
        store["visits"] = store.get("visits", 0) + 1
        drive(store._save_flow(store._session_cache, False), 1)

    return work, key, blob


def engine_cpu_us(bench: peers.Bench, size: str, rounds: int, seconds: float) -> float:
    """The median over ``rounds`` slices of the CPU time per ``engine_work`` call, in us."""
    work, _, _ = engine_work(bench, size)
    samples = []
    with bench.engine_settings("redisstore"):
        for _ in range(rounds + 1):  # the first slice warms up
            n, started, cpu_started = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - started < seconds:
                for _ in range(10):
                    work()
                n += 10
            samples.append((time.process_time() - cpu_started) / n * 1e6)
    return statistics.median(samples[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--size", choices=("small", "large"), default="small")
    args = parser.parse_args()
    rng = random.Random(6)
    sizes = {"small": peers.small_session(rng), "large": peers.large_session(rng)}
    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="redisstore-interleave-") as tmp:
            peers.configure_django(server.url, Path(tmp))
            bench = peers.Bench(server.url, {args.size: sizes[args.size]})
            work, key, blob = engine_work(bench, args.size)
            from django_redisstore.session import SessionStore

            floor = bench.floor
            floor.set("floor:interleave", blob, ex=peers.COOKIE_AGE)

            spin_seconds = [0.0]

            def spin() -> None:
                end = time.perf_counter() + spin_seconds[0]
                while time.perf_counter() < end:
                    pass

            def around(between: Callable[[], None] | None) -> Callable[[], None]:
                def op() -> None:
                    floor.get("floor:interleave")
                    if between is not None:
                        between()
                    floor.set("floor:interleave", blob, ex=peers.COOKIE_AGE)

                return op

            def rmw() -> None:
                store = SessionStore(key)
                store["visits"] = store.get("visits", 0) + 1
                store.save()

            cells = {
                "floor": around(None),
                "engine work": work,
                "floor + spin": around(spin),
                "floor + engine work": around(work),
                "redisstore rmw": rmw,
            }
            wall: dict[str, list[float]] = {name: [] for name in cells}
            cpu: dict[str, list[float]] = {name: [] for name in cells}
            with bench.engine_settings("redisstore"):
                for _ in range(args.rounds + 1):  # the first round warms up
                    for name, op in cells.items():
                        if name == "floor + spin":
                            spin_seconds[0] = statistics.median(wall["engine work"] or [0]) / 1e6
                        n, started, cpu_started = 0, time.perf_counter(), time.process_time()
                        while time.perf_counter() - started < 0.2:
                            for _ in range(10):
                                op()
                            n += 10
                        wall[name].append((time.perf_counter() - started) / n * 1e6)
                        cpu[name].append((time.process_time() - cpu_started) / n * 1e6)
    finally:
        server.stop()
    print(f"{args.size + ' session, per operation':<30}{'wall us':>9}{'CPU us':>9}")
    for name in cells:
        print(
            f"{name:<30}{statistics.median(wall[name][1:]):>9.1f}"
            f"{statistics.median(cpu[name][1:]):>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
