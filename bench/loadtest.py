"""testproject behind real servers, this engine against Django's cache engine, in one run.

    python -m pip install -r bench/requirements.txt
    python bench/loadtest.py                 # about 2 minutes; --seconds/--rounds to change

Starts a ``redis-server`` on a free port, then for each server setup (gunicorn WSGI serving
``/``; uvicorn ASGI serving ``/`` and the async view ``/async/``) and each engine (picked with
``BENCH_SESSION_ENGINE``, read by ``bench/loadsettings.py``) starts the server as a subprocess on
loopback, drives it from this process with a small asyncio HTTP/1.1 client, and stops it. Every
virtual client keeps its own keep-alive connection and its own cookie, so each one is a distinct
session; the run checks that each client's visit counter reached the number of requests it made
(no lost or mixed-up sessions). Engines alternate within each round. Requests per second and
p50/p99 latency go to the terminal and to ``bench/results/loadtest-*.json``.

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

from tests.redis_servers import RedisServer, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENGINES = ("redisstore", "cache")
_VISITS = re.compile(rb"seen (\d+) visit")
_COOKIE = re.compile(rb"sessionid=([^;]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Setup:
    name: str
    path: str
    command: list[str]


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
class Client:
    """One visitor: its cookie, its connection, and what it saw."""

    cookie: bytes = b""
    requests: int = 0
    last_visits: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def get(self, port: int, path: str) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        assert self.reader is not None
        cookie = b"Cookie: sessionid=" + self.cookie + b"\r\n" if self.cookie else b""
        request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cookie + b"\r\n"
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        body = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            self.errors += 1
        found = _COOKIE.search(head)
        if found:
            self.cookie = found.group(1)
        seen = _VISITS.search(body)
        if seen:
            self.last_visits = int(seen.group(1))
        if re.search(rb"(?i)connection: *close", head):
            await self.close()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def drive(
    port: int, path: str, clients: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """``clients`` visitors in parallel, each requesting in a loop; one second of warm-up."""
    visitors = [Client() for _ in range(clients)]
    measuring = False
    budget = max_requests

    async def visit(client: Client) -> None:
        nonlocal budget
        while True:
            started = time.perf_counter()
            try:
                await client.get(port, path)
            except (OSError, asyncio.IncompleteReadError, AttributeError):
                client.errors += 1
                await client.close()
                continue
            client.requests += 1
            if measuring:
                client.latencies.append(time.perf_counter() - started)
                budget -= 1
                if budget <= 0:
                    return

    tasks = [asyncio.create_task(visit(c)) for c in visitors]
    await asyncio.sleep(1.0)
    measuring = True
    started = time.perf_counter()
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    elapsed = time.perf_counter() - started
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for client in visitors:
        await client.close()
    latencies = sorted(x for c in visitors for x in c.latencies)
    if len(latencies) < 2:
        raise RuntimeError(f"the server answered {len(latencies)} requests: is it failing?")
    # Each completed request must have counted: a lower counter means a lost session write.
    lost = sum(1 for c in visitors if c.last_visits < c.requests)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * statistics.quantiles(latencies, n=100)[98]
        if len(latencies) > 1
        else None,
        "errors": sum(c.errors for c in visitors),
        "clients_with_lost_visits": lost,
        "distinct_sessions": len({c.cookie for c in visitors if c.cookie}),
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
                                    port, setup.path, args.clients, args.seconds, args.max_requests
                                )
                            )
                        results[setup.name][engine].append(figures)
                        print(
                            f"  {setup.name:<36} {engine:<11} {figures['rps']:7.0f} req/s  "
                            f"p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms",
                            file=sys.stderr,
                        )
    finally:
        redis_server.stop()

    print(
        f"\n{'server':<38}{'engine':<12}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'lost':>6}"
    )
    summary: dict[str, Any] = {}
    for name, per_engine in results.items():
        summary[name] = {}
        for engine, runs in per_engine.items():
            row = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "clients_with_lost_visits": sum(r["clients_with_lost_visits"] for r in runs),
                "runs": runs,
            }
            summary[name][engine] = row
            print(
                f"{name:<38}{engine:<12}{row['rps']:>8.0f}{row['p50_ms']:>9.1f}"
                f"{row['p99_ms']:>9.1f}{row['errors']:>8}{row['clients_with_lost_visits']:>6}"
            )
        ratio = summary[name]["redisstore"]["rps"] / summary[name]["cache"]["rps"]
        summary[name]["rps_ratio_redisstore_to_cache"] = round(ratio, 3)
        print(f"{'':<38}{'ratio':<12}{ratio:>8.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
