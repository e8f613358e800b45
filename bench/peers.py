"""django-redisstore against the session engines people would use instead, in one run.

Run from a checkout (it imports the engine from the working tree)::

    python -m pip install -r bench/requirements.txt
    python bench/peers.py            # about 4 minutes; --quick for a rough pass in one

It starts its own ``redis-server`` on a free port (``tests/redis_servers.py``), configures
Django in-process, and measures, for every engine, workload, session size and (where the engine
has it natively) sync and async API:

* ops/s: the median over ``--rounds`` rounds, with the spread (lowest and highest round). The
  engines take turns in short slices (``--slice`` seconds) within each round, so machine noise
  hits all of them alike; the first round is a warm-up and is not counted;
* the ratio to the *floor*: raw redis-py doing the least work the workload needs on the same
  stored bytes (one ``GET``, one ``SET ... EX``; ``GETEX`` for a sliding read);
* Redis round trips per operation (packets sent: calls of redis-py's ``send_packed_command``,
  counted in a separate pass so that the counting costs the timed slices nothing), and commands
  per operation (``INFO commandstats`` deltas; commands that a Lua script runs count too);
* bytes per session in Redis (``MEMORY USAGE`` of what one session's creation added).

Output: a table on the terminal, ``bench/results/peers-<time>.json`` (and ``peers-latest.json``)
and, with ``--chart``, ``docs/benchmark.png``.

``--rtt 200us`` (or ``0.5ms``...) puts ``bench/latency_proxy.py`` between every client and the
server: Redis as if across a network, on a machine without ``tc netem``. The proxy runs as a
separate process and delays each chunk by half the round trip each way; the run records the
``PING`` round trip measured with and without it, and prints a table of the ratios between the
Redis engines as well. Without ``--rtt`` nothing sits between the clients and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the engine, the test helpers and bench.site from this checkout

import redis  # noqa: E402
import redis.asyncio  # noqa: E402

from bench.latency_proxy import Proxy, format_duration, parse_duration, ping_rtt  # noqa: E402
from tests.redis_servers import RedisServer, RoundTrips  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHART = ROOT / "docs" / "benchmark.png"
COOKIE_AGE = 3600

# name -> SESSION_ENGINE; "floor" is raw redis-py (bench/site.py for the request workload).
ENGINES = {
    "redisstore": "django_redisstore.session",
    "cache+django-redis": "django.contrib.sessions.backends.cache",
    "django-redis-sessions": "redis_sessions.session",
    "cached_db": "django.contrib.sessions.backends.cached_db",
    "db (SQLite)": "django.contrib.sessions.backends.db",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
    "floor": "bench.site",
}
# Engines with a native async API (the others would run their sync code in a thread).
ASYNC_ENGINES = ("redisstore", "floor")
REDIS_ENGINES = ("redisstore", "cache+django-redis", "django-redis-sessions", "cached_db")
WORKLOADS = {
    "rmw": "read-modify-write: load, change one key, save",
    "read": "read-only: load, read one key",
    "read-sliding": "read-only with SESSION_SAVE_EVERY_REQUEST (what the middleware does)",
    "create": "create a session with the data and save it",
    "request": "a GET through SessionMiddleware (Django test client) that counts a visit",
}
ASYNC_WORKLOADS = ("rmw", "read", "create")


# Session data ------------------------------------------------------------------------------


def small_session(rng: random.Random) -> dict[str, Any]:
    """A signed-in shopper: auth keys, a cart of three lines, preferences (~0.5 KB of JSON)."""
    return {
        "_auth_user_id": "48213",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": "".join(rng.choices("0123456789abcdef", k=64)),
        "cart": [
            {
                "sku": f"SKU-{rng.randrange(10000, 99999)}",
                "qty": rng.randrange(1, 4),
                "price": f"{rng.randrange(100, 9999) / 100:.2f}",
            }
            for _ in range(3)
        ],
        "prefs": {"lang": "en-gb", "tz": "Europe/London", "theme": "dark", "currency": "GBP"},
        "last_search": "waterproof hiking boots size 43",
        "visits": 0,
    }


def large_session(rng: random.Random) -> dict[str, Any]:
    """The small session plus 100 recently viewed products: ~20 KB, compressible like real data."""
    data = small_session(rng)
    words = ["alpine", "trail", "jacket", "waterproof", "boot", "merino", "fleece", "lite", "pro"]
    data["recently_viewed"] = [
        {
            "id": rng.randrange(100000, 999999),
            "name": " ".join(rng.choices(words, k=4)).title(),
            "url": f"/products/{rng.randrange(100000, 999999)}/",
            "price": f"{rng.randrange(1000, 40000) / 100:.2f}",
            "in_stock": rng.random() > 0.2,
            "viewed_at": f"2026-11-{rng.randrange(1, 30):02d}T{rng.randrange(24):02d}:00:00Z",
        }
        for _ in range(135)
    ]
    return data


# Django, configured in-process -------------------------------------------------------------


def configure_django(url: str, directory: Path) -> None:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-" + "k" * 50,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django_redisstore",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(directory / "sessions.sqlite3"),
            }
        },
        CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}},
        SESSION_REDIS={"url": url, "prefix": "drs", "socket_timeout": 1.0},
        REDISSTORE_URL=url,
        SESSION_COOKIE_AGE=COOKIE_AGE,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF="bench.site",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


# Counting Redis traffic ------------------------------------------------------------------


def command_counts(admin: redis.Redis) -> dict[str, int]:
    """Commands the server has run so far, by name, INFO itself excepted."""
    stats = admin.info("commandstats")
    return {k[8:]: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


# Workloads ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """One engine running one workload on one session size, sync or async."""

    engine: str
    workload: str
    size: str
    mode: str  # "sync" | "async"
    op: Callable[[], Any]  # sync: returns None; async: returns an awaitable
    cleanup: Callable[[], Any] = lambda: None
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # seconds of this process's CPU per op
    round_trips: float | None = None
    commands: float | None = None
    command_mix: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.workload}/{self.size}/{self.mode}"


class Bench:
    def __init__(self, url: str, sizes: dict[str, dict[str, Any]]) -> None:
        from django.conf import settings

        self.settings = settings
        self.url = url
        self.sizes = sizes
        self.floor = redis.Redis.from_url(url)
        self.afloor: redis.asyncio.Redis | None = None
        self.runner = asyncio.Runner()
        self.cells: list[Cell] = []
        self.blobs: dict[str, bytes] = {}  # size -> redisstore's stored bytes (the floor's)

    # --- helpers
    def store_class(self, engine: str) -> Any:
        from importlib import import_module

        return import_module(ENGINES[engine]).SessionStore

    @contextlib.contextmanager
    def engine_settings(self, engine: str, sliding: bool = False) -> Iterator[None]:
        from django.test.utils import override_settings

        with override_settings(SESSION_ENGINE=ENGINES[engine], SESSION_SAVE_EVERY_REQUEST=sliding):
            yield

    def seed(self, engine: str, size: str) -> str:
        """Create a session holding ``size``'s data with ``engine``; return its key."""
        data = self.sizes[size]
        if engine == "floor":
            key = f"{size}-{secrets.token_hex(8)}"
            blob = self.blobs[size]
            self.floor.set(f"floor:{key}", blob, ex=COOKIE_AGE)
            from bench import site

            site.FLOOR["client"] = self.floor
            site.FLOOR["blobs"][key] = blob
            site.FLOOR["data"][key] = data
            return key
        with self.engine_settings(engine):
            store = self.store_class(engine)()
            store.update(data)
            store.save()
            return str(store.session_key)

    # --- building the cells
    def build(self) -> None:
        for size in self.sizes:
            key = self.seed("redisstore", size)
            from django_redisstore import keys

            blob = self.floor.get(keys.session_name(keys.session_id(key)))
            assert blob is not None
            self.blobs[size] = blob
        for size in self.sizes:
            for workload in WORKLOADS:
                for engine in ENGINES:
                    self.cells.append(self.sync_cell(engine, workload, size))
            for workload in ASYNC_WORKLOADS:
                for engine in ASYNC_ENGINES:
                    self.cells.append(self.async_cell(engine, workload, size))

    def sync_cell(self, engine: str, workload: str, size: str) -> Cell:
        data = self.sizes[size]
        if workload == "request":
            return self.request_cell(engine, size)
        if engine == "floor":
            return self.floor_cell(workload, size)
        store = self.store_class(engine)
        state = {"key": self.seed(engine, size)}
        created: list[str] = []

        def rmw() -> None:
            s = store(state["key"])
            s["visits"] = s.get("visits", 0) + 1
            s.save()
            state["key"] = s.session_key

        def read() -> None:
            s = store(state["key"])
            s.get("visits")

        def read_sliding() -> None:  # SessionMiddleware with SESSION_SAVE_EVERY_REQUEST
            s = store(state["key"])
            s.get("visits")
            s.save()
            state["key"] = s.session_key

        def create() -> None:
            s = store()
            s.update(data)
            s.save()
            created.append(s.session_key)

        def cleanup() -> None:
            with self.engine_settings(engine):
                for key in created:
                    store().delete(key)
            created.clear()

        ops = {"rmw": rmw, "read": read, "read-sliding": read_sliding, "create": create}
        return Cell(engine, workload, size, "sync", ops[workload], cleanup)

    def floor_cell(self, workload: str, size: str) -> Cell:
        client, blob = self.floor, self.blobs[size]
        name = f"floor:{size}"
        client.set(name, blob, ex=COOKIE_AGE)
        created: list[str] = []
        counter = iter(range(10**12))

        def create() -> None:
            key = f"floor:new:{next(counter)}"
            client.set(key, blob, ex=COOKIE_AGE)
            created.append(key)

        def cleanup() -> None:
            for i in range(0, len(created), 1000):
                client.unlink(*created[i : i + 1000])
            created.clear()

        ops: dict[str, Callable[[], Any]] = {
            "rmw": lambda: (client.get(name), client.set(name, blob, ex=COOKIE_AGE)),
            "read": lambda: client.get(name),
            "read-sliding": lambda: client.getex(name, ex=COOKIE_AGE),
            "create": create,
        }
        return Cell("floor", workload, size, "sync", ops[workload], cleanup)

    def request_cell(self, engine: str, size: str) -> Cell:
        from django.test import Client

        client = Client()
        key = self.seed(engine, size)
        client.cookies[self.settings.SESSION_COOKIE_NAME] = key

        def request() -> None:
            response = client.get("/")
            assert response.status_code == 200

        return Cell(engine, "request", size, "sync", request)

    def async_cell(self, engine: str, workload: str, size: str) -> Cell:
        data = self.sizes[size]
        created: list[str] = []
        if engine == "floor":
            blob, name = self.blobs[size], f"floor:{size}"
            counter = iter(range(10**12))

            def client() -> redis.asyncio.Redis:
                if self.afloor is None:
                    self.afloor = redis.asyncio.Redis.from_url(self.url)
                return self.afloor

            async def frmw() -> None:
                await client().get(name)
                await client().set(name, blob, ex=COOKIE_AGE)

            async def fread() -> None:
                await client().get(name)

            async def fcreate() -> None:
                key = f"floor:anew:{next(counter)}"
                await client().set(key, blob, ex=COOKIE_AGE)
                created.append(key)

            def fcleanup() -> None:
                for i in range(0, len(created), 1000):
                    self.floor.unlink(*created[i : i + 1000])
                created.clear()

            fops = {"rmw": frmw, "read": fread, "create": fcreate}
            return Cell(engine, workload, size, "async", fops[workload], fcleanup)

        store = self.store_class(engine)
        state = {"key": self.seed(engine, size)}

        async def rmw() -> None:
            s = store(state["key"])
            await s.aset("visits", await s.aget("visits", 0) + 1)
            await s.asave()
            state["key"] = s.session_key

        async def read() -> None:
            s = store(state["key"])
            await s.aget("visits")

        async def create() -> None:
            s = store()
            await s.aupdate(data)
            await s.asave()
            created.append(s.session_key)

        def cleanup() -> None:
            with self.engine_settings(engine):
                for key in created:
                    store().delete(key)
            created.clear()

        ops = {"rmw": rmw, "read": read, "create": create}
        return Cell(engine, workload, size, "async", ops[workload], cleanup)

    # --- running
    def _context(self, cell: Cell) -> contextlib.AbstractContextManager[None]:
        return self.engine_settings(cell.engine, sliding=cell.workload == "read-sliding")

    def run_slice(self, cell: Cell, seconds: float) -> tuple[float, float]:
        """Run ``cell``'s operation for about ``seconds``; return operations per second, and the
        CPU seconds this process spent per operation (the engine's own cost, which other
        processes on the machine disturb far less than they disturb wall-clock rates)."""
        batch = 5
        with self._context(cell):
            if cell.mode == "sync":
                op = cell.op
                cpu = time.process_time()
                n, start = 0, time.perf_counter()
                end = start + seconds
                while True:
                    for _ in range(batch):
                        op()
                    n += batch
                    now = time.perf_counter()
                    if now >= end:
                        break
                rate, cpu = n / (now - start), (time.process_time() - cpu) / n
            else:
                cpu = time.process_time()
                rate, n = self.runner.run(self._async_slice(cell.op, seconds, batch))
                cpu = (time.process_time() - cpu) / n
        cell.cleanup()
        return rate, cpu

    @staticmethod
    async def _async_slice(
        op: Callable[[], Awaitable[Any]], seconds: float, batch: int
    ) -> tuple[float, int]:
        n, start = 0, time.perf_counter()
        end = start + seconds
        while True:
            for _ in range(batch):
                await op()
            n += batch
            now = time.perf_counter()
            if now >= end:
                return n / (now - start), n

    def count_traffic(self, ops: int = 40) -> None:
        """Round trips and commands per operation, in a pass of its own (not timed)."""
        admin = redis.Redis.from_url(self.url)
        counter = RoundTrips()
        for cell in self.cells:
            with self._context(cell):
                self._run_n(cell, 3)  # connections opened, scripts loaded
                before = command_counts(admin)
                counter.count = 0
                with counter.counting():
                    self._run_n(cell, ops)
                cell.round_trips = counter.count / ops
                after = command_counts(admin)
                cell.command_mix = {
                    name: round((n - before.get(name, 0)) / ops, 2)
                    for name, n in sorted(after.items())
                    if n != before.get(name, 0)
                }
                cell.commands = sum(cell.command_mix.values())
            cell.cleanup()
        admin.close()

    def _run_n(self, cell: Cell, n: int) -> None:
        if cell.mode == "sync":
            for _ in range(n):
                cell.op()
        else:

            async def many() -> None:
                for _ in range(n):
                    await cell.op()

            self.runner.run(many())

    def run(self, rounds: int, seconds: float, progress: bool = True) -> None:
        """``rounds`` + 1 rounds (the first is a warm-up); within a round every cell takes a
        slice, engines interleaved within each workload, their order rotated between rounds."""
        groups: dict[str, list[Cell]] = {}
        for cell in self.cells:
            groups.setdefault(cell.label, []).append(cell)
        for r in range(rounds + 1):
            started = time.perf_counter()
            for group in groups.values():
                shift = r % len(group)
                for cell in group[shift:] + group[:shift]:
                    rate, cpu = self.run_slice(cell, seconds)
                    if r:
                        cell.rates.append(rate)
                        cell.cpu.append(cpu)
            if progress:
                what = "warm-up" if r == 0 else f"round {r}/{rounds}"
                print(f"  {what} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)

    # --- memory
    def memory_shapes(self) -> dict[str, dict[str, Any]]:
        """The sessions measured for memory: the sizes, and the small session with a random
        200-character token (what compression cannot shrink)."""
        rng = random.Random(12)
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        token = "".join(rng.choices(alphabet, k=200))
        return {**self.sizes, "token": {**self.sizes["small"], "token": token}}

    def memory(self) -> dict[str, dict[str, Any]]:
        """Bytes that one new session adds to Redis, per engine and size (``MEMORY USAGE``)."""
        from django.test.utils import override_settings

        admin = redis.Redis.from_url(self.url)
        out: dict[str, dict[str, Any]] = {}
        variants: list[tuple[str, str, dict[str, Any]]] = [(e, e, {}) for e in REDIS_ENGINES]
        variants.append(
            ("redisstore (uncompressed)", "redisstore", {"REDISSTORE_COMPRESS_MIN_SIZE": None})
        )
        for label, engine, extra in variants:
            out[label] = {}
            for size, data in self.memory_shapes().items():
                before = set(admin.scan_iter(count=1000))
                with self.engine_settings(engine), override_settings(**extra):
                    store = self.store_class(engine)()
                    store.update(data)
                    store.save()
                new = set(admin.scan_iter(count=1000)) - before
                sessions = [k for k in new if b":u:" not in k]
                out[label][size] = {
                    "bytes": sum(admin.memory_usage(k, samples=0) or 0 for k in sessions),
                    "value_bytes": sum(admin.strlen(k) for k in sessions),
                }
                admin.delete(*new)
        # A signed-in session also has an entry in its user's index (a sorted set per user).
        from django_redisstore import keys

        index = keys.user_index_name(self.sizes["small"]["_auth_user_id"])
        entries = admin.zcard(index)
        if entries:
            out["redisstore"]["user_index_bytes_per_entry"] = round(
                (admin.memory_usage(index, samples=0) or 0) / entries, 1
            )
        admin.close()
        return out


# Reporting ---------------------------------------------------------------------------------


def summarize(bench: Bench, memory: dict[str, Any]) -> dict[str, Any]:
    floors = {c.label: c for c in bench.cells if c.engine == "floor"}
    rows = []
    for cell in bench.cells:
        median = statistics.median(cell.rates)
        rows.append(
            {
                "engine": cell.engine,
                "workload": cell.workload,
                "size": cell.size,
                "mode": cell.mode,
                "ops_per_s": round(median, 1),
                "min": round(min(cell.rates), 1),
                "max": round(max(cell.rates), 1),
                "ratio_to_floor": round(paired_ratio(cell.rates, floors[cell.label].rates), 3),
                "rates": [round(r, 1) for r in cell.rates],
                "cpu_us_per_op": round(statistics.median(cell.cpu) * 1e6, 1),
                "round_trips": cell.round_trips,
                "commands": cell.commands,
                "command_mix": cell.command_mix,
            }
        )
    return {"rows": rows, "memory": memory}


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median of per-round ratios: each round's two slices ran seconds apart, so a ratio
    within a round cancels most of the machine's drift, which a ratio of medians would not."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def find(
    rows: list[dict[str, Any]], engine: str, workload: str, size: str, mode: str = "sync"
) -> dict[str, Any]:
    for row in rows:
        if (row["engine"], row["workload"], row["size"], row["mode"]) == (
            engine,
            workload,
            size,
            mode,
        ):
            return row
    raise KeyError((engine, workload, size, mode))


#: Issue 12's speed ratios, on loopback: (workload, size, peer, at least).
LOOPBACK_TARGETS = [
    ("rmw", "small", "cache+django-redis", 1.25),
    ("rmw", "small", "django-redis-sessions", 1.1),
    ("read", "small", "cache+django-redis", 1.0),
    ("read", "small", "django-redis-sessions", 1.0),
    ("create", "small", "cache+django-redis", 1.3),
    ("rmw", "large", "cache+django-redis", 1.3),
    ("rmw", "large", "django-redis-sessions", 1.3),
    ("read", "large", "cache+django-redis", 1.0),
    ("read", "large", "django-redis-sessions", 1.0),
    ("create", "large", "cache+django-redis", 1.2),
]
#: Across a network (``--rtt 200us``).
NETWORK_RTT = 200e-6
NETWORK_TARGETS = [("rmw", "small", "floor", 0.9), ("rmw", "small", "cache+django-redis", 1.35)]
#: The engine's own CPU per read-modify-write (``bench/interleave.py``'s "engine work"), us.
ENGINE_CPU_TARGETS = {"small": 15.0, "large": 80.0}
#: Bytes per session in Redis, redisstore / the cache engine, at most.
BYTES_TARGETS = [("token", 1.0), ("small", 0.8), ("large", 0.3)]

Target = tuple[str, float | None, str, bool | None]  # what, figure, bound, met (None: not run)


def targets(result: dict[str, Any]) -> list[Target]:
    """The targets of issue 12 (and issue 6's round trips), as (what, figure, bound, met); a
    target the run cannot check (a network target on loopback, and the other way round) has
    ``met`` None."""
    try:
        return _targets(result)
    except KeyError:  # a partial run (--engines, --workloads) has no targets to check
        return []


def _targets(result: dict[str, Any]) -> list[Target]:
    rows, mem = result["rows"], result["memory"]
    network = result.get("meta", {}).get("network")
    on_network = network is not None and network["rtt_added_us"] == round(NETWORK_RTT * 1e6, 1)
    out: list[Target] = []

    def ratio_target(
        workload: str, size: str, peer: str, bound: float, runs: bool, where: str = ""
    ) -> None:
        what = f"{workload} {size}{where}: redisstore / {peer}"
        if not runs:
            out.append((what, None, f">= {bound}", None))
            return
        ours = find(rows, "redisstore", workload, size)["rates"]
        ratio = paired_ratio(ours, find(rows, peer, workload, size)["rates"])
        out.append((what, ratio, f">= {bound}", ratio >= bound))

    for workload, size, peer, bound in LOOPBACK_TARGETS:
        ratio_target(workload, size, peer, bound, network is None)
    for workload, size, peer, bound in NETWORK_TARGETS:
        ratio_target(workload, size, peer, bound, on_network, " (--rtt 200us)")
    for size, bound in ENGINE_CPU_TARGETS.items():
        cpu = result.get("engine_cpu_us", {}).get(size)
        met = None if cpu is None else cpu <= bound
        out.append((f"engine CPU per rmw {size}, us (interleave.py)", cpu, f"<= {bound:g}", met))
    for size, bound in BYTES_TARGETS:
        ratio = mem["redisstore"][size]["bytes"] / mem["cache+django-redis"][size]["bytes"]
        label = "small + 200-char random token" if size == "token" else size
        out.append((f"bytes {label}: redisstore / cache", ratio, f"<= {bound}", ratio <= bound))
    for size in ("small", "large"):
        for workload in ("read", "read-sliding"):
            rt = find(rows, "redisstore", workload, size)["round_trips"]
            out.append((f"{workload} {size}: round trips", rt, "== 1", rt == 1))
    return out


def faster_peers(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], float]:
    """Per row of an engine other than this one and the floor: its rate over this engine's in
    the same workload, size and mode (median of per-round ratios)."""
    out = {}
    for row in rows:
        if row["engine"] in ("redisstore", "floor"):
            continue
        try:
            ours = find(rows, "redisstore", row["workload"], row["size"], row["mode"])
        except KeyError:
            continue
        key = (row["engine"], row["workload"], row["size"], row["mode"])
        out[key] = paired_ratio(row["rates"], ours["rates"])
    return out


def table(result: dict[str, Any]) -> str:
    lines = []
    header = (
        f"{'workload':<13}{'size':<6}{'mode':<6}{'engine':<23}{'ops/s':>9}  {'spread':>15}"
        f"{'x floor':>8}{'CPU us':>8}{'RT/op':>7}{'cmd/op':>7}  {'x ours':<8}"
    )
    versus = faster_peers(result["rows"])
    for row in result["rows"]:
        if (
            not lines
            or row["workload"] != lines[-1][0]
            or row["size"] != lines[-1][1]
            or row["mode"] != lines[-1][2]
        ):
            lines.append((row["workload"], row["size"], row["mode"], None))
        lines.append((row["workload"], row["size"], row["mode"], row))
    text = [header, "-" * len(header)]
    for workload, size, mode, row in lines:
        if row is None:
            if len(text) > 2:
                text.append("")
            continue
        spread = f"{row['min']:.0f}-{row['max']:.0f}"
        rt = "" if row["round_trips"] is None else f"{row['round_trips']:.2f}"
        cmd = "" if row["commands"] is None else f"{row['commands']:.2f}"
        theirs = versus.get((row["engine"], workload, size, mode))
        # A peer faster than this engine here is marked: "<< FASTER".
        mark = "" if theirs is None else f"{theirs:.2f}" + ("  << FASTER" if theirs > 1 else "")
        text.append(
            f"{workload:<13}{size:<6}{mode:<6}{row['engine']:<23}"
            f"{row['ops_per_s']:>9.0f}  {spread:>15}"
            f"{row['ratio_to_floor']:>8.2f}{row['cpu_us_per_op']:>8.0f}{rt:>7}{cmd:>7}  {mark}"
        )
    text.append("")
    text.append(
        f"{'bytes per session in Redis (MEMORY USAGE)':<45}{'small':>9}{'large':>9}"
        f"{'small+token':>13}"
    )
    for label, sizes in result["memory"].items():
        text.append(
            f"  {label:<43}{sizes['small']['bytes']:>9}{sizes['large']['bytes']:>9}"
            f"{sizes['token']['bytes']:>13}"
        )
    per_entry = result["memory"]["redisstore"].get("user_index_bytes_per_entry")
    if per_entry:
        text.append(
            f"  (redisstore: plus {per_entry} bytes per signed-in session in its user index)"
        )
    if result.get("engine_cpu_us"):
        cpu = result["engine_cpu_us"]
        text.append("")
        text.append(
            "engine CPU per read-modify-write without I/O (bench/interleave.py's engine work): "
            + ", ".join(f"{size} {us:.1f} us" for size, us in cpu.items())
        )
    if result.get("targets"):
        text.append("")
        text.append("targets (issue 12; SKIP: a target of the other kind of run, loopback or rtt)")
    for what, figure, bound, met in (tuple(t.values()) for t in result.get("targets", [])):
        verdict = "SKIP" if met is None else "PASS" if met else "FAIL"
        shown = "" if figure is None else f"{figure:.2f}"
        text.append(f"  {verdict}  {what:<55}{shown:>7}  {bound}")
    return "\n".join(text)


def rst_table(result: dict[str, Any]) -> str:
    """The figures that README.rst shows, as an RST grid (sync API, ops/s and ratio to floor)."""
    rows, mem = result["rows"], result["memory"]
    columns = [
        ("rmw", "small"),
        ("read", "small"),
        ("read-sliding", "small"),
        ("create", "small"),
        ("request", "small"),
        ("rmw", "large"),
    ]
    head = [
        "engine",
        *(f"{w} {s}" for w, s in columns),
        "round trips rmw/read/sliding/create",
        "bytes small/large",
    ]
    body = []
    for engine in ENGINES:
        line = [engine]
        for workload, size in columns:
            row = find(rows, engine, workload, size)
            line.append(f"{row['ops_per_s']:,.0f} ({row['ratio_to_floor']:.2f}x)")
        trips = [
            find(rows, engine, w, "small")["round_trips"] for w in WORKLOADS if w != "request"
        ]
        line.append("/".join(f"{t:g}" for t in trips))
        if engine in mem:
            line.append(f"{mem[engine]['small']['bytes']:,}/{mem[engine]['large']['bytes']:,}")
        else:
            line.append("-")
        body.append(line)
    return rst_grid(head, body)


NETWORK_PEERS = ("cache+django-redis", "django-redis-sessions")


def network_rst(results: list[dict[str, Any]]) -> str:
    """README.rst's table for runs through the latency proxy: per round trip, workload and
    size, each Redis engine's ops/s with its ratio to the floor, and this engine's ratio to
    each peer (paired by round, like every ratio here)."""
    head = [
        "round trip added",
        "workload",
        "floor",
        "redisstore",
        *NETWORK_PEERS,
        "ours / cache",
        "ours / drs",
        "round trips (ours/cache/drs)",
    ]
    body = []
    for result in results:
        net, rows = result["meta"]["network"], result["rows"]
        rtt = f"+{net['rtt']} (PING {net['ping_rtt_proxy_us']:.0f} us)"
        for workload in ("rmw", "read", "read-sliding", "create"):
            for size in ("small", "large"):
                try:
                    ours = find(rows, "redisstore", workload, size)
                except KeyError:
                    continue
                line = [rtt, f"{workload} {size}"]
                line.append(f"{find(rows, 'floor', workload, size)['ops_per_s']:,.0f}")
                for engine in ("redisstore", *NETWORK_PEERS):
                    row = find(rows, engine, workload, size)
                    line.append(f"{row['ops_per_s']:,.0f} ({row['ratio_to_floor']:.2f}x)")
                for peer in NETWORK_PEERS:
                    theirs = find(rows, peer, workload, size)["rates"]
                    line.append(f"{paired_ratio(ours['rates'], theirs):.2f}")
                trips = [
                    find(rows, e, workload, size)["round_trips"]
                    for e in ("redisstore", *NETWORK_PEERS)
                ]
                line.append("/".join(f"{t:g}" for t in trips))
                body.append(line)
                rtt = ""
    return rst_grid(head, body)


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["mode"] == "sync"]
    engines = [e for e in ENGINES if e != "floor"]
    workloads = list(WORKLOADS)
    colors = ["#c0392b", "#2980b9", "#8e44ad", "#16a085", "#7f8c8d", "#d4ac0d"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), gridspec_kw={"width_ratios": [3, 3, 2]})
    for ax, size in zip(axes[:2], ("small", "large"), strict=True):
        width = 0.8 / len(engines)
        top = 1.3
        for i, engine in enumerate(engines):
            values = [find(rows, engine, w, size)["ratio_to_floor"] for w in workloads]
            xs = [x + (i - (len(engines) - 1) / 2) * width for x in range(len(workloads))]
            ax.bar(xs, values, width, label=engine, color=colors[i])
            for x, v in zip(xs, values, strict=True):
                if v > top:  # signed_cookies stores nothing server-side: clip, and say so
                    ax.text(x, top, f"{v:.1f}", ha="center", va="top", fontsize=7, rotation=90)
        ax.set_ylim(0, top * 1.06)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.text(
            len(workloads) - 0.5, 1.01, "raw redis-py floor", ha="right", va="bottom", fontsize=8
        )
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_ylabel("ops/s relative to the raw redis-py floor (higher is better)")
        label = "~0.5 KB" if size == "small" else "~20 KB"
        ax.set_title(f"{size} session ({label}), sync, same run")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(engines), fontsize=8)
    mem = result["memory"]
    labels = [
        "redisstore",
        "redisstore (uncompressed)",
        "cache+django-redis",
        "django-redis-sessions",
        "cached_db",
    ]
    ax = axes[2]
    for j, size in enumerate(("small", "large")):
        vals = [mem[label][size]["bytes"] for label in labels]
        ys = [y + j * 0.4 for y in range(len(labels))]
        ax.barh(ys, vals, 0.4, label=size)
        for y, v in zip(ys, vals, strict=True):
            ax.text(v, y, f" {v:,}", va="center", fontsize=7)
    ax.set_xlim(right=max(mem[label]["large"]["bytes"] for label in labels) * 1.3)
    ax.set_yticks([y + 0.2 for y in range(len(labels))], labels, fontsize=8)
    ax.set_xlabel("bytes per session (MEMORY USAGE; lower is better)")
    ax.set_title("memory")
    ax.legend(fontsize=8)
    ax.invert_yaxis()
    fig.suptitle(
        f"django-redisstore vs peers ({result['meta']['date']}, {result['meta']['machine']})"
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")


def machine() -> str:
    cores = os.cpu_count()
    distro = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    return f"{cores} cores, {distro or platform.system()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="counted rounds (default 15)")
    parser.add_argument("--slice", type=float, default=0.1, help="seconds per slice (0.1)")
    parser.add_argument("--quick", action="store_true", help="4 rounds of 0.04 s slices")
    parser.add_argument("--chart", action="store_true", help=f"write {CHART.relative_to(ROOT)}")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...)")
    parser.add_argument("--engines", help="comma-separated engines (default all; floor always)")
    parser.add_argument("--workloads", help="comma-separated workloads (default all)")
    parser.add_argument(
        "--rtt",
        type=parse_duration,
        help="talk to Redis through bench/latency_proxy.py adding this round trip (200us, 1ms)",
    )
    parser.add_argument(
        "--network-table",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print README.rst's table of --rtt runs from their JSON files, and exit",
    )
    args = parser.parse_args(argv)
    if args.network_table:
        print(network_rst([json.loads(p.read_text()) for p in args.network_table]))
        return 0
    if args.quick:
        args.rounds, args.slice = 4, 0.04

    rng = random.Random(6)
    sizes = {"small": small_session(rng), "large": large_session(rng)}
    server = RedisServer().start()
    proxy: Proxy | None = None
    network: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="redisstore-bench-") as tmp:
        try:
            url = server.url
            if args.rtt is not None:  # every client, the benchmark's own included, via the proxy
                proxy = Proxy(server.port, args.rtt).start()
                url = url.replace(f":{server.port}/", f":{proxy.port}/")
                network = {
                    "rtt": format_duration(args.rtt) if args.rtt else "0",
                    "rtt_added_us": round(args.rtt * 1e6, 1),
                    "ping_rtt_direct_us": round(ping_rtt(server.port) * 1e6, 1),
                    "ping_rtt_proxy_us": round(ping_rtt(proxy.port) * 1e6, 1),
                }
                print(f"through the latency proxy: {network}", file=sys.stderr)
            configure_django(url, Path(tmp))
            bench = Bench(url, sizes)
            bench.build()
            if args.engines or args.workloads:  # a partial run, for development: no targets
                engines = set((args.engines or ",".join(ENGINES)).split(",")) | {"floor"}
                workloads = set((args.workloads or ",".join(WORKLOADS)).split(","))
                bench.cells = [
                    c for c in bench.cells if c.engine in engines and c.workload in workloads
                ]
            print(f"{len(bench.cells)} cells; counting round trips and commands", file=sys.stderr)
            bench.count_traffic()
            bench.run(args.rounds, args.slice)
            memory = bench.memory()
            engine_cpu: dict[str, float] = {}
            if not (args.engines or args.workloads):
                from bench.interleave import engine_cpu_us

                print("engine CPU (bench/interleave.py's engine work)", file=sys.stderr)
                for size in sizes:
                    engine_cpu[size] = round(engine_cpu_us(bench, size, args.rounds, 0.1), 1)
            redis_version = bench.floor.info("server")["redis_version"]
            if network is not None and proxy is not None:  # again, after the run
                network["ping_rtt_proxy_after_us"] = round(ping_rtt(proxy.port) * 1e6, 1)
        finally:
            if proxy is not None:
                proxy.stop()
            server.stop()
    result = summarize(bench, memory)
    result["engine_cpu_us"] = engine_cpu
    import django
    from django.conf import settings

    result["meta"] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "redis": redis_version,
        "django": django.get_version(),
        "redis_py": redis.__version__,
        "hiredis": _hiredis(),
        "rounds": args.rounds,
        "slice_seconds": args.slice,
        "serializer": settings.SESSION_SERIALIZER,
        "session_json_bytes": {
            k: len(json.dumps(v, separators=(",", ":"))) for k, v in sizes.items()
        },
        "command": "python bench/peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if network is not None:
        result["meta"]["network"] = network
    partial = bool(args.engines or args.workloads)
    result["targets"] = [
        {"what": w, "figure": None if f is None else round(f, 3), "bound": b, "met": m}
        for w, f, b, m in ([] if partial else targets(result))
    ]
    print(table(result))
    if network is not None:
        print(f"\nthrough the latency proxy: {network}")
        print(network_rst([result]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    rtt = "" if network is None else f"rtt{network['rtt']}-"
    output = args.output or RESULTS / f"peers-{rtt}{stamp}.json"
    text = json.dumps(result, indent=1)
    output.write_text(text)
    (RESULTS / "peers-latest.json").write_text(text)
    if network is not None:  # README.rst's table for runs across a (simulated) network
        output.with_suffix(".rst").write_text(network_rst([result]) + "\n")
    elif result["targets"]:  # a full run: the README's table too
        output.with_suffix(".rst").write_text(rst_table(result) + "\n")
    print(f"\nwrote {output}", file=sys.stderr)
    if args.chart:
        chart(result, CHART)
        print(f"wrote {CHART}", file=sys.stderr)
    checked = [t for t in result["targets"] if t["met"] is not None]
    return 0 if checked and all(t["met"] for t in checked) else 1


def _hiredis() -> str | None:
    try:
        import hiredis  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(hiredis.__version__)


def rst_grid(head: list[str], body: list[list[str]]) -> str:
    """``head`` and ``body`` as a reStructuredText grid table (README.rst shows them)."""
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(cells: list[str]) -> str:
        return "|" + "|".join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + "|"

    out = [rule, fmt(head), rule.replace("-", "="), *(x for b in body for x in (fmt(b), rule))]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
