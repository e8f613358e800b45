"""The engine's own work counted in CPU instructions: ``python bench/instructions.py``.

Wall and CPU times move with whatever else the machine runs; the number of instructions a piece
of code executes does not. This runs ``bench/interleave.py``'s "engine work" (the read and the
save flows of one read-modify-write, fed the replies Redis would give, no I/O) under Valgrind's
``callgrind``, ``--ops`` times after a warm-up, and prints the instructions per operation; only
the timed loop is counted (it runs inside a libffi call, which Valgrind is told to watch), not
Django's set-up or the imports. ``--keep FILE`` keeps callgrind's output for
``callgrind_annotate --inclusive=yes FILE``. Also ``--workload read`` (the read
flow alone), ``--workload client`` (redis-py's ``GET`` and ``SET EX`` of the floor) and
``--workload redis-rmw`` (a small session's read-modify-write on a real server, the engine's work,
its executor and redis-py together); for the last two a Redis server is started, outside
Valgrind.

One operation's instructions are not its time (a cache miss costs more than an add), but a
change that executes fewer instructions in the same code is faster, and the count is the same
on a busy machine as on a quiet one: ``--ab REV`` counts the code of a git revision too, in a
temporary worktree, for a before/after of a change.

``--child`` is the process that runs under Valgrind (not for direct use).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _settings(url: str) -> None:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-" + "k" * 50,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django_redisstore",
        ],
        DATABASES={},
        REDISSTORE_URL=url,
        SESSION_ENGINE="django_redisstore.session",
        SESSION_COOKIE_AGE=3600,
        USE_TZ=True,
    )
    import django

    django.setup()


def _drive(flow: Any, reply: Any, sent: list[Any] | None = None) -> Any:
    try:
        step = flow.send(None)
        while True:
            if sent is not None:
                sent.append(step)
            step = flow.send([reply] * len(step))
    except StopIteration as done:
        return done.value


def _engine(size: str, workload: str) -> Callable[[], None]:
    # django.setup() imports the engine first: bench.peers then puts this checkout on sys.path.
    _settings("redis://127.0.0.1:1/0")  # never connected to
    from bench import peers
    from django_redisstore import storage
    from django_redisstore.session import SessionStore

    rng = random.Random(6)
    sizes = {"small": peers.small_session(rng), "large": peers.large_session(rng)}
    seed = SessionStore()
    seed.update(sizes[size])
    sent: list[Any] = []
    _drive(storage.create_flow(seed, seed._get_session(no_load=True), None), True, sent)
    key = seed.session_key
    blob = sent[0][0].args[2]
    assert isinstance(blob, bytes)

    def rmw() -> None:
        store = SessionStore(key)
        store._session_cache = _drive(store._load_flow(), blob)
        store["visits"] = store.get("visits", 0) + 1
        _drive(store._save_flow(store._session_cache, False), 1)

    def read() -> None:
        store = SessionStore(key)
        store._session_cache = _drive(store._load_flow(), blob)
        store.get("visits")

    return rmw if workload == "rmw" else read


def _store_rmw(url: str) -> Callable[[], None]:
    _settings(url)
    from bench import peers
    from django_redisstore.session import SessionStore

    seed = SessionStore()
    seed.update(peers.small_session(random.Random(6)))
    seed.save()
    key = seed.session_key

    def rmw() -> None:
        store = SessionStore(key)
        store["visits"] = store.get("visits", 0) + 1
        store.save()

    return rmw


def _client(url: str) -> Callable[[], None]:
    import redis

    client = redis.Redis.from_url(url)
    blob = b"x" * 400
    client.set("floor:instructions", blob)

    def op() -> None:
        client.get("floor:instructions")
        client.set("floor:instructions", blob, ex=3600)

    return op


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.source)  # the engine of the checkout being counted
    if args.workload == "client":
        op = _client(args.url)
    elif args.workload == "redis-rmw":
        op = _store_rmw(args.url)
    else:
        op = _engine(args.size, args.workload)
    for _ in range(args.warm):
        op()

    def loop() -> None:
        for _ in range(args.n):
            op()

    # Called through libffi: Valgrind counts only what runs inside ``ffi_call`` (the loop).
    ctypes.CFUNCTYPE(None)(loop)()


def count(source: Path, args: argparse.Namespace, n: int, url: str) -> int:
    with tempfile.TemporaryDirectory(prefix="redisstore-callgrind-") as tmp:
        out = args.keep or Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--toggle-collect=ffi_call*",
            sys.executable,
            __file__,
            "--child",
            "--source",
            str(source),
            "--workload",
            args.workload,
            "--size",
            args.size,
            "--n",
            str(n),
            "--warm",
            str(args.warm),
            "--url",
            url,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=source)
        text = out.read_text()
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    assert match, "no totals in callgrind's output"
    return int(match.group(1))


def per_op(source: Path, args: argparse.Namespace, url: str) -> float:
    return count(source, args, args.ops, url) / args.ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    workloads = ("rmw", "read", "client", "redis-rmw")
    parser.add_argument("--workload", choices=workloads, default="rmw")
    parser.add_argument("--size", choices=("small", "large"), default="small")
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="keep callgrind's output in this file")
    parser.add_argument("--ab", metavar="REV", help="also count the code of this git revision")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--source", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    server = None
    url = ""
    if args.workload in ("client", "redis-rmw"):
        sys.path.insert(0, str(ROOT))
        from tests.redis_servers import RedisServer

        server = RedisServer().start()
        url = server.url
    try:
        sources = {"this checkout": ROOT}
        with tempfile.TemporaryDirectory(prefix="redisstore-ab-") as tmp:
            if args.ab:
                other = Path(tmp) / "ab"
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), args.ab],
                    check=True,
                    capture_output=True,
                )
                sources = {args.ab: other, **sources}
            try:
                label = args.workload
                if args.workload in ("rmw", "read"):
                    label += " " + args.size
                for name, source in sources.items():
                    print(f"{label}, {name}: {per_op(source, args, url):,.0f} instructions per op")
            finally:
                if args.ab:
                    subprocess.run(
                        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)],
                        check=True,
                        capture_output=True,
                    )
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
