"""Benchmark: ``manage.py sessions`` against a million sessions.

Starts its own ``redis-server`` (on a free port, no persistence), loads N sessions in the
engine's real record format (30 % signed in, spread over 50,000 users, one of whom has 1,000
sessions), then times, each in a fresh process whose peak RSS is measured:

* ``sessions inspect --format json`` (the summary);
* ``sessions purge --user`` of the user with 1,000 sessions;
* ``sessions purge --all --yes``, and, on a second identical load, a bare redis-py loop of
  ``SCAN MATCH <prefix>:* COUNT 1000`` + ``UNLINK`` of each batch (the floor to compare with).

Run from the repository root::

    python bench/million_sessions.py            # 1,000,000 sessions
    python bench/million_sessions.py -n 100000  # a quicker run

Needs ``redis-server`` and ``redis-cli`` on PATH (or ``REDIS_SERVER``), and the packages of the
test suite. ``--repeat 3`` shows the best of three runs (on a busy machine). The figures in
docs/command.rst ("How it scales") come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET_KEY = "bench-secret-key-not-secret"
PREFIX = "bench"
USERS = 50_000
HEAVY_USER = "424242"
HEAVY_SESSIONS = 1_000
SIGNED_IN = 0.3


def configure(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY=SECRET_KEY,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_redisstore",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="django_redisstore.session",
        REDISSTORE_URL=url,
        REDISSTORE_KEY_PREFIX=PREFIX,
        REDISSTORE_SOCKET_TIMEOUT=30.0,
    )
    django.setup()


# The child: one management command in a process of its own -------------------------------------


def child(url: str, args: list[str]) -> None:
    configure(url)
    from django.core.management import call_command

    started = time.perf_counter()
    call_command(*args, stdout=open(os.devnull, "w"))  # noqa: SIM115
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss``, it does not inherit
    the parent's peak across ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_loop(url: str) -> None:
    """The floor: SCAN + batched UNLINK in plain redis-py, nothing else."""
    import redis

    client = redis.Redis.from_url(url)
    started = time.perf_counter()
    deleted = 0
    cursor = 0
    while True:
        cursor, names = client.scan(cursor, match=f"{PREFIX}:*", count=1000)
        if names:
            deleted += client.unlink(*names)
        if not cursor:
            break
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "deleted": deleted, "rss_mb": peak_rss_mb()}))


def measure(url: str, *args: str, mode: str = "--child") -> dict[str, Any]:
    """Run ``args`` in a child process; its own timing, wall time and peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, mode, url, *args],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    process.wait()
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(output.decode().strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


# Loading ---------------------------------------------------------------------------------------


def resp(*args: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def load(url: str, port: int, count: int, seed: int) -> float:
    """Write ``count`` sessions (and their user indexes) through ``redis-cli --pipe``."""
    import base64

    from django.core.signing import JSONSerializer

    from django_redisstore import codec, keys

    rng = random.Random(seed)
    serializer = JSONSerializer()
    now = time.time()
    started = time.perf_counter()
    pipe = subprocess.Popen(
        [shutil.which("redis-cli") or "redis-cli", "-p", str(port), "--pipe"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert pipe.stdin is not None and pipe.stdout is not None
    chunk: list[bytes] = []
    indexed: dict[str, float] = {}
    for i in range(count):
        sid = base64.urlsafe_b64encode(rng.randbytes(16)).rstrip(b"=").decode()
        name = keys.session_name(sid)
        age = rng.randrange(0, 14 * 86400)
        created = now - age
        ttl = max(60, 14 * 86400 - rng.randrange(0, age + 1))
        data: dict[str, Any] = {"visits": rng.randrange(100), "theme": "dark", "cart": [1, 2, 3]}
        user = None
        if i < HEAVY_SESSIONS:
            user = HEAVY_USER
        elif rng.random() < SIGNED_IN:
            user = str(rng.randrange(USERS))
        until = 0.0
        if user:
            data["_auth_user_id"] = user
            data["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
            data["_auth_user_hash"] = rng.randbytes(32).hex()
            until = now + ttl + 86400
        payload = serializer.dumps(data)
        blob, _ = codec.pack(
            name,
            payload,
            secret=SECRET_KEY,
            created=created,
            saved=created,
            idle=14 * 86400,
            until=until,
            compress_min_size=256,
        )
        chunk.append(resp("SET", name, blob, "PX", ttl * 1000))
        if user:
            index = keys.user_index_name(user)
            chunk.append(resp("ZADD", index, repr(until), sid))
            indexed[index] = max(indexed.get(index, 0.0), until)
        if len(chunk) >= 20_000:
            pipe.stdin.write(b"".join(chunk))
            chunk = []
    chunk += [resp("PEXPIREAT", index, int(until * 1000)) for index, until in indexed.items()]
    pipe.stdin.write(b"".join(chunk))
    pipe.stdin.close()
    report = pipe.stdout.read().decode()
    pipe.wait()
    if "errors: 0" not in report:
        raise SystemExit(f"redis-cli --pipe reported errors: {report}")
    return time.perf_counter() - started


# The run --------------------------------------------------------------------------------------


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores {model}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--sessions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of everything; the best time of each is shown"
    )
    options = parser.parse_args()

    from tests.redis_servers import RedisServer

    server = RedisServer().start()
    try:
        configure(server.url)
        import redis

        client = redis.Redis.from_url(server.url)
        version = client.info("server")["redis_version"]
        count = options.sessions
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}, "
            f"Python {platform.python_version()}, Redis {version}, "
            f"redis-py {redis.__version__}, {count:,} sessions",
            flush=True,
        )
        best: dict[str, dict[str, Any]] = {}

        def keep(label: str, result: dict[str, Any]) -> None:
            if label not in best or result["seconds"] < best[label]["seconds"]:
                best[label] = result

        left = 0
        for run in range(options.repeat):
            loaded = load(server.url, server.port, count, options.seed)
            memory = client.info("memory")["used_memory"]
            print(
                f"# run {run + 1}: loaded in {loaded:.1f} s; Redis memory "
                f"{memory / 2**20:,.0f} MiB",
                flush=True,
            )
            keep(
                "sessions inspect (summary)",
                measure(server.url, "sessions", "inspect", "--format", "json"),
            )
            keep(
                f"sessions purge --user ({HEAVY_SESSIONS:,} sessions)",
                measure(server.url, "sessions", "purge", "--user", HEAVY_USER, "--yes"),
            )
            keep(
                "sessions purge --all", measure(server.url, "sessions", "purge", "--all", "--yes")
            )
            left += client.dbsize()
            load(server.url, server.port, count, options.seed)
            keep("bare SCAN + UNLINK loop (redis-py)", measure(server.url, mode="--bare-loop"))
            left += client.dbsize()
        rows = list(best.items())
        purge_all = best["sessions purge --all"]
        bare = best["bare SCAN + UNLINK loop (redis-py)"]

        print()
        header = ("operation", "seconds", "process wall s", "peak RSS MB")
        print("| {:<40} | {:>8} | {:>14} | {:>11} |".format(*header))
        print(f"|{'-' * 42}|{'-' * 10}|{'-' * 16}|{'-' * 13}|")
        for label, result in rows:
            print(
                f"| {label:<40} | {result['seconds']:>8.3f} | {result['wall']:>14.2f} "
                f"| {result['rss_mb']:>11.0f} |"
            )
        ratio = purge_all["seconds"] / bare["seconds"]
        print()
        print(f"purge --all / bare loop: {ratio:.2f}x; keys left after the deletions: {left}")
        client.close()
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
    elif sys.argv[1:2] == ["--bare-loop"]:
        bare_loop(sys.argv[2])
    else:
        main()
