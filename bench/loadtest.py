"""testproject behind real servers, this engine against Django's cache engine, in one run.

    python -m pip install -r bench/requirements.txt
    python bench/loadtest.py                 # about 2 minutes; --seconds/--rounds to change

Starts a ``redis-server`` on a free port, then for each server setup (gunicorn WSGI serving the
counting view ``/``; uvicorn ASGI serving ``/`` and the async one ``/async/``; both again with
two tabs per visitor) and each engine (picked with ``BENCH_SESSION_ENGINE``, read by
``bench/loadsettings.py``) starts the server as a subprocess on loopback, drives it from this
process with a small asyncio HTTP/1.1 client, and stops it. The views are the load test's own
(``bench/loadurls.py``) behind testproject's settings and middleware.

Every visitor has its own session cookie, and each of its tabs its own keep-alive connection.
With one tab, a visitor's requests follow each other; with two ("two tabs, one session") they
run in parallel on the one session, each tab counting in a key of its own. At the end every tab
finishes its request in flight and ``/peek/`` reads each session's counters: a visit the
session does not hold is *lost*. A lost visit fails the run (exit status 1) with one tab for
either engine, and with two tabs for this engine; the cache engine's losses with two tabs are
counted (it writes the whole session back, so a tab's save undoes the other's). Engines
alternate within each round. Requests per second, p50/p99 latency and the visits lost go to the
terminal and to ``bench/results/loadtest-*.json``.

Every run is bounded: ``--seconds`` per measurement (after a one-second warm-up), and at most
``--max-requests`` requests per measurement; every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import machine  # noqa: E402
from tests.redis_servers import RedisServer, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENGINES = ("redisstore", "cache")
_VISITS = re.compile(rb"seen (\d+) visit")
_COUNTER = re.compile(rb"visits_(\d+)=(\d+)")
_COOKIE = re.compile(rb"sessionid=([^;]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Setup:
    name: str
    path: str
    command: list[str]
    tabs: int = 1  # parallel requests per visitor, on one session


def setups(port: int, workers: int) -> list[Setup]:
    bind = f"127.0.0.1:{port}"
    python = sys.executable
    gunicorn = [
        python, "-m", "gunicorn", "testproject.wsgi:application", "--bind", bind,
        "--workers", str(workers), "--worker-class", "gthread", "--threads", "4",
        "--keep-alive", "30", "--log-level", "warning",
    ]  # fmt: skip
    uvicorn = [
        python, "-m", "uvicorn", "testproject.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    return [
        Setup("gunicorn (WSGI) /", "/", gunicorn),
        Setup("uvicorn (ASGI) /", "/", uvicorn),
        Setup("uvicorn (ASGI) /async/ (aget/aset)", "/async/", uvicorn),
        Setup("gunicorn (WSGI) /, two tabs", "/", gunicorn, tabs=2),
        Setup("uvicorn (ASGI) /async/, two tabs", "/async/", uvicorn, tabs=2),
    ]


@contextlib.contextmanager
def serve(setup: Setup, engine: str, env: dict[str, str], port: int) -> Iterator[None]:
    """Run the server for ``engine`` until the block ends; stop it (and its workers) after."""
    env = {**env, "BENCH_SESSION_ENGINE": engine}
    process = subprocess.Popen(
        setup.command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{setup.name} did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Visitor:
    """One visitor: its session cookie, shared by its tabs."""

    cookie: bytes = b""


@dataclass
class Tab:
    """One tab of a visitor: its own keep-alive connection, the requests it made, what it saw."""

    visitor: Visitor
    number: int
    requests: int = 0
    last_visits: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def get(self, port: int, path: str) -> bytes:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        assert self.reader is not None
        cookie = self.visitor.cookie
        header = b"Cookie: sessionid=" + cookie + b"\r\n" if cookie else b""
        request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        body = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            self.errors += 1
        found = _COOKIE.search(head)
        if found:
            self.visitor.cookie = found.group(1)
        if re.search(rb"(?i)connection: *close", head):
            await self.close()
        return body

    async def visit(self, port: int, path: str) -> None:
        body = await self.get(port, f"{path}?tab={self.number}")
        seen = _VISITS.search(body)
        if seen:
            self.last_visits = int(seen.group(1))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def drive(
    port: int, path: str, visitors: int, tabs: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """``visitors`` visitors in parallel, each with ``tabs`` tabs requesting in a loop on its one
    session; one second of warm-up. Each visitor's first request is made alone (it creates the
    session); at the end every tab finishes its request in flight, so that every request the
    server answered is counted, and ``/peek/`` reads each visitor's counters."""
    people = [Visitor() for _ in range(visitors)]
    all_tabs = [Tab(person, n) for person in people for n in range(tabs)]
    state = {"measuring": False, "stop": False, "budget": max_requests}

    async def loop(tab: Tab) -> None:
        while not state["stop"]:
            started = time.perf_counter()
            try:
                await tab.visit(port, path)
            except (OSError, asyncio.IncompleteReadError, AttributeError):
                tab.errors += 1
                await tab.close()
                continue
            tab.requests += 1
            if state["measuring"]:
                tab.latencies.append(time.perf_counter() - started)
                state["budget"] -= 1
                if state["budget"] <= 0:
                    state["stop"] = True

    firsts = [t for t in all_tabs if t.number == 0]
    await asyncio.gather(*(t.visit(port, path) for t in firsts))
    for tab in firsts:
        tab.requests += 1
    tasks = [asyncio.create_task(loop(t)) for t in all_tabs]
    await asyncio.sleep(1.0)
    state["measuring"] = True
    started = time.perf_counter()
    while not state["stop"] and time.perf_counter() - started < seconds:
        await asyncio.sleep(0.05)
    state["stop"] = True
    elapsed = time.perf_counter() - started
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    latencies = sorted(x for t in all_tabs for x in t.latencies)
    if len(latencies) < 2:
        raise RuntimeError(f"the server answered {len(latencies)} requests: is it failing?")
    lost = 0
    for person in people:  # what the session holds, against what each tab asked for
        mine = [t for t in all_tabs if t.visitor is person]
        counters = dict(_COUNTER.findall(await mine[0].get(port, "/peek/")))
        for tab in mine:
            lost += tab.requests - int(counters.get(str(tab.number).encode(), 0))
    for tab in all_tabs:
        await tab.close()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * statistics.quantiles(latencies, n=100)[98],
        "errors": sum(t.errors for t in all_tabs),
        "requests_total": sum(t.requests for t in all_tabs),
        "lost_visits": lost,
        "distinct_sessions": len({p.cookie for p in people if p.cookie}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement (6)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per engine (2)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent visitors (32)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    parser.add_argument("--max-requests", type=int, default=50000, help="per measurement")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...)")
    args = parser.parse_args(argv)

    redis_server = RedisServer().start()
    port = free_port()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="redisstore-load-") as tmp:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "bench.loadsettings",
                "REDIS_URL": redis_server.url,
                "DEMO_DATABASE": str(Path(tmp) / "load.sqlite3"),
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            }
            for setup in setups(port, args.workers):
                results[setup.name] = {engine: [] for engine in ENGINES}
                for r in range(args.rounds):
                    order = ENGINES if r % 2 == 0 else ENGINES[::-1]
                    for engine in order:
                        with serve(setup, engine, env, port):
                            figures = asyncio.run(
                                drive(
                                    port,
                                    setup.path,
                                    args.clients,
                                    setup.tabs,
                                    args.seconds,
                                    args.max_requests,
                                )
                            )
                        results[setup.name][engine].append(figures)
                        print(
                            f"  {setup.name:<36} {engine:<11} {figures['rps']:7.0f} req/s  "
                            f"p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms  "
                            f"lost {figures['lost_visits']}",
                            file=sys.stderr,
                        )
    finally:
        redis_server.stop()

    print(
        f"\n{'server':<38}{'engine':<12}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'lost':>6}{'requests':>10}"
    )
    summary: dict[str, Any] = {}
    failures = []
    tabs = {setup.name: setup.tabs for setup in setups(port, args.workers)}
    for name, per_engine in results.items():
        summary[name] = {}
        for engine, runs in per_engine.items():
            row = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "requests_total": sum(r["requests_total"] for r in runs),
                "lost_visits": sum(r["lost_visits"] for r in runs),
                "runs": runs,
            }
            summary[name][engine] = row
            print(
                f"{name:<38}{engine:<12}{row['rps']:>8.0f}{row['p50_ms']:>9.1f}"
                f"{row['p99_ms']:>9.1f}{row['errors']:>8}{row['lost_visits']:>6}"
                f"{row['requests_total']:>10}"
            )
            # One tab per session: no engine may lose a visit. Two tabs changing different
            # keys of one session: this engine may not; the cache engine's losses are counted.
            if row["lost_visits"] and (tabs[name] == 1 or engine == "redisstore"):
                failures.append(f"{name}, {engine}: {row['lost_visits']} visits lost")
        ratio = summary[name]["redisstore"]["rps"] / summary[name]["cache"]["rps"]
        summary[name]["rps_ratio_redisstore_to_cache"] = round(ratio, 3)
        print(f"{'':<38}{'ratio':<12}{ratio:>8.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "command": "python bench/loadtest.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    output = args.output or RESULTS / f"loadtest-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    text = json.dumps({"meta": meta, "results": summary}, indent=1)
    output.write_text(text)
    (RESULTS / "loadtest-latest.json").write_text(text)
    print(f"\nwrote {output}", file=sys.stderr)
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
