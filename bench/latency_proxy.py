"""A TCP proxy on loopback that delays every chunk by a fixed one-way delay: Redis "across a
network" on a machine without ``tc netem``.

::

    python bench/latency_proxy.py --target 127.0.0.1:6379 --rtt 200us   # prints its port
    python bench/latency_proxy.py check --rtt 200us,500us                # its own overhead

Each chunk read from one side is written to the other side ``rtt / 2`` after it was read, in
order; chunks do not wait for one another, so the link behaves like a wire of fixed latency and
unlimited bandwidth (no loss, no jitter beyond the host's own). It runs as its own process
(``peers.py --rtt`` starts it) so that its CPU does not take the benchmark's GIL, listens only on
127.0.0.1, and ends on SIGTERM, when the process given by ``--parent`` ends, or after
``--max-seconds``.

Why the details below: sub-millisecond timers need both a selector whose timeout is not
rounded up to a millisecond (``epoll_wait`` and ``poll`` take milliseconds; ``select`` takes
microseconds) and a timer slack below Linux's default 50 us (``PR_SET_TIMERSLACK``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import signal
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LISTEN_HOST = "127.0.0.1"  # never anything else: this is a benchmark tool, not a service


def parse_duration(text: str) -> float:
    """``"200us"``, ``"0.5ms"``, ``"1ms"``, ``"0.001s"``, ``"0"`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(us|ms|s)?\s*", text)
    if not match or (match.group(2) is None and float(match.group(1)) != 0):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 200us, 0.5ms, 1ms, 0)")
    seconds = float(match.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[match.group(2) or "s"]
    if seconds > 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a round trip above 1 s is not a datacenter")
    return seconds


def format_duration(seconds: float) -> str:
    return f"{seconds * 1e6:g}us" if seconds < 1e-3 else f"{seconds * 1e3:g}ms"


def tight_timers() -> None:
    """Ask Linux to wake this process on time (1 ns timer slack instead of 50 us)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK


CHUNK = 256 * 1024
SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each received packet (socket module lacks it)
STAMP_SPACE = socket.CMSG_SPACE(16)  # one struct timespec
MAX_CONNECTIONS = 256
MAX_LATE = 100e-6  # the most that one late wake-up counts for when learning ``late``


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """When the kernel received the chunk (``SCM_TIMESTAMPNS``), as ``time.time()`` reads."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return float(seconds + nanoseconds * 1e-9)
    return None


def forward(
    source: socket.socket, sink: socket.socket, delay: float, done: Callable[[], None]
) -> None:
    """One direction of one connection: every chunk leaves ``delay`` after the kernel received
    it. Timing from the kernel's stamp, not from when this thread woke up, keeps the thread's
    own wake-up latency inside the delay instead of on top of it; ``late`` learns how late
    ``sleep`` wakes on this host (tens of microseconds on a VM) and aims that much earlier."""
    late = 0.0
    try:
        while True:
            data, ancillary, _, _ = source.recvmsg(CHUNK, STAMP_SPACE)
            if not data:
                break
            if delay > 0:
                due = (arrival(ancillary) or time.time()) + delay
                aim = due - late
                wait = aim - time.time()
                if wait > 0:
                    time.sleep(wait)
                    # A hiccup of the host (milliseconds) must not teach it to skip delays.
                    overshoot = min(max(0.0, time.time() - aim), MAX_LATE)
                    late = min(delay / 2, 0.9 * late + 0.1 * overshoot)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        done()


def splice(client: socket.socket, target: tuple[str, int], delay: float) -> None:
    """Connect to ``target`` and forward both ways, a thread per direction; close both sockets
    when both directions have ended."""
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    ends = [2]
    lock = threading.Lock()

    def done() -> None:
        with lock:
            ends[0] -= 1
            last = ends[0] == 0
        if last:
            client.close()
            upstream.close()

    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    for source, sink in ((client, upstream), (upstream, client)):
        threading.Thread(target=forward, args=(source, sink, delay, done), daemon=True).start()


def serve(
    target: tuple[str, int], delay: float, port: int, parent: int | None, max_seconds: float
) -> None:
    """Accept on 127.0.0.1 until the parent is gone (we were re-parented) or time is up."""
    deadline = time.monotonic() + max_seconds
    with socket.create_server((LISTEN_HOST, port)) as listener:
        listener.settimeout(0.5)
        print(f"listening {LISTEN_HOST}:{listener.getsockname()[1]}", flush=True)
        while time.monotonic() < deadline:
            if parent is not None and os.getppid() != parent:
                return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            if threading.active_count() > 2 * MAX_CONNECTIONS:
                client.close()
                continue
            client.settimeout(None)
            splice(client, target, delay)


def parse_target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


# Starting one from another process -------------------------------------------------------


class Proxy:
    """A proxy process in front of ``target`` with a round trip of ``rtt`` seconds added:
    ``with Proxy(port, rtt) as proxy: ... proxy.port``. Stopped (and waited for) on exit."""

    def __init__(self, target_port: int, rtt: float, max_seconds: float = 3600.0) -> None:
        self.target_port, self.rtt, self.max_seconds = target_port, rtt, max_seconds
        self.process: Any = None
        self.port = 0

    def start(self) -> Proxy:
        import subprocess

        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--target",
                f"127.0.0.1:{self.target_port}",
                "--rtt",
                f"{self.rtt * 1e6:.3f}us",
                "--parent",
                str(os.getpid()),
                "--max-seconds",
                str(self.max_seconds),
            ],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the latency proxy did not start (it said {line!r})")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except Exception:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def ping_rtt(port: int, n: int = 300) -> float:
    """Median seconds of a ``PING`` round trip to 127.0.0.1:``port`` with redis-py."""
    import redis

    client = redis.Redis(port=port)
    try:
        for _ in range(20):
            client.ping()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            client.ping()
            times.append(time.perf_counter() - start)
    finally:
        client.close()
    return statistics.median(times)


# The proxy's own cost ----------------------------------------------------------------------


def check(rtts: list[float], rounds: int, seconds: float) -> int:
    """The floor's read-modify-write (GET, SET EX) and a PING, straight to Redis and through
    proxies at 0 and at each ``rtts``, in slices taking turns: what the proxy itself adds."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    import redis

    from tests.redis_servers import RedisServer

    blob = os.urandom(472)
    with RedisServer() as server, contextlib.ExitStack() as stack:
        ports = {"direct": server.port}
        for rtt in [0.0, *rtts]:
            proxy = stack.enter_context(Proxy(server.port, rtt))
            ports[f"proxy {format_duration(rtt)}" if rtt else "proxy 0"] = proxy.port
        clients = {name: redis.Redis(port=port) for name, port in ports.items()}
        rates: dict[str, list[float]] = {name: [] for name in ports}
        for r in range(rounds + 1):
            for name, client in clients.items():
                client.set("k", blob, ex=60)
                n, start = 0, time.perf_counter()
                while (now := time.perf_counter()) - start < seconds:
                    client.get("k")
                    client.set("k", blob, ex=60)
                    n += 1
                if r:
                    rates[name].append(n / (now - start))
        for client in clients.values():
            client.close()
        pings = {name: ping_rtt(port) for name, port in ports.items()}
    base = rates["direct"]
    print(f"{'path':<16}{'PING RTT us':>12}{'GET+SET/s':>11}{'x direct':>10}")
    for name in ports:
        ratio = statistics.median(a / b for a, b in zip(rates[name], base, strict=True))
        print(
            f"{name:<16}{pings[name] * 1e6:>12.0f}{statistics.median(rates[name]):>11.0f}"
            f"{ratio:>10.2f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        parser = argparse.ArgumentParser(prog="latency_proxy.py check", description=check.__doc__)
        parser.add_argument("--rtt", default="200us,500us", help="comma-separated round trips")
        parser.add_argument("--rounds", type=int, default=10)
        parser.add_argument("--slice", type=float, default=0.2)
        args = parser.parse_args(argv[1:])
        rtts = [parse_duration(x) for x in args.rtt.split(",")]
        return check(rtts, args.rounds, args.slice)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=parse_target, required=True, help="host:port of Redis")
    parser.add_argument("--rtt", type=parse_duration, required=True, help="e.g. 200us, 1ms")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--parent", type=int, help="end when this process (our parent) ends")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="end after this long")
    args = parser.parse_args(argv)
    tight_timers()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.target, args.rtt / 2, args.port, args.parent, args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
