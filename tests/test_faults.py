"""Faults on real servers, in the middle of traffic: Redis killed and restarted, stalled, cut off.

Workers (threads, or asyncio tasks) each own a few sessions and keep saving a growing counter in
them; a save that returns without error is *acknowledged*. While they run, the test breaks Redis
several times and heals it again, in the same process (Django is never restarted). Afterwards:

* every acknowledged save is there (the stored counter is at least the acknowledged one: a save
  whose reply was lost may have landed too);
* every failure the workers saw was ``ConnectionInterrupted``: no other exception, no session
  read as empty, no ``UpdateError`` (a session lost);
* every operation returned: none hung.

The killed server runs with ``appendonly yes`` and ``appendfsync always``: what Redis
acknowledged is on disk before the reply leaves.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from django_redisstore import clients, flows, storage
from django_redisstore.exceptions import ConnectionInterrupted
from django_redisstore.session import SessionStore

from .django_versions import needs_async_api
from .faults import MIDDLEWARE_503, TIMEOUT, proxied
from .redis_servers import RedisServer
from .tcp_proxy import FORWARD, REFUSE, STALL, TcpProxy
from .threads import run_threads

#: An operation that takes longer than this hung: the engine's worst case with the tests'
#: settings is (RETRIES + 1) ** 2 dials with backoff plus one timeout, well under a second.
HANG = 10.0
#: Faults per test: a few in the suite, many in the soak run (``pytest -m slow``).
CYCLES = [3, pytest.param(30, marks=pytest.mark.slow, id="soak")]


def durable_server() -> RedisServer:
    return RedisServer("--appendonly", "yes", "--appendfsync", "always").start()


@pytest.fixture
def durable(settings: Any) -> Iterator[RedisServer]:
    """A Redis that writes every acknowledged command to disk, for the engine alone."""
    server = durable_server()
    settings.REDISSTORE_URL = server.url
    settings.REDISSTORE_CONNECT_TIMEOUT = TIMEOUT
    settings.REDISSTORE_SOCKET_TIMEOUT = TIMEOUT
    try:
        yield server
    finally:
        server.stop()


class Ledger:
    """What the workers did: acknowledged counters, interruptions, anything else that failed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, int] = {}  # session key -> last acknowledged counter
        self.saves = 0
        self.interrupted = 0
        self.problems: list[str] = []
        self.slowest = 0.0
        self.stop = threading.Event()

    def record(self, started: float, key: str | None, value: int, error: Exception | None) -> None:
        with self.lock:
            self.slowest = max(self.slowest, time.monotonic() - started)
            if error is None:
                assert key is not None
                self.acked[key] = value
                self.saves += 1
            elif isinstance(error, ConnectionInterrupted):
                self.interrupted += 1
            else:
                self.problems.append(f"{type(error).__name__}: {error}")

    def _progress(self, saves: int, interrupted: int) -> Callable[[], bool]:
        """A test of whether ``saves`` more saves or ``interrupted`` more failures happened."""
        saves += self.saves
        interrupted += self.interrupted

        def reached() -> bool:
            assert not self.problems, self.problems[:5]
            return self.saves >= saves and self.interrupted >= interrupted

        return reached

    def wait(self, saves: int = 0, interrupted: int = 0) -> None:
        """Block until the workers made that much progress (30 s at most)."""
        reached, deadline = self._progress(saves, interrupted), time.monotonic() + 30
        while not reached():
            assert time.monotonic() < deadline, "the traffic made no progress"
            time.sleep(0.005)

    async def await_(self, saves: int = 0, interrupted: int = 0) -> None:
        """``wait``, for asyncio workers."""
        reached, deadline = self._progress(saves, interrupted), time.monotonic() + 30
        while not reached():
            assert time.monotonic() < deadline, "the traffic made no progress"
            await asyncio.sleep(0.005)

    def verify(self) -> int:
        """Check every acknowledged save against Redis; return how many were checked."""
        assert not self.problems, self.problems[:5]
        assert self.slowest < HANG
        for key, value in self.acked.items():
            data = SessionStore(key).load()
            assert data.get("n", -1) >= value, f"acknowledged save of {key} lost"
        return len(self.acked)


class Worker:
    """One client's sessions: each step reads one, bumps its counter and saves it."""

    FIELD = "n"

    def __init__(self, ledger: Ledger, sessions: int) -> None:
        self.ledger = ledger
        self.keys: list[str | None] = [None] * sessions
        self.counters = [0] * sessions
        self.turn = 0

    def _next(self) -> tuple[int, str | None, int]:
        i = self.turn % len(self.keys)
        self.turn += 1
        self.counters[i] += 1  # even a failed save may have landed: never reuse a value
        return i, self.keys[i], self.counters[i]

    def _check_read(self, session: SessionStore, key: str | None) -> None:
        if key is not None and session.session_key != key:
            raise AssertionError(f"session {key} read as gone")

    def step(self) -> None:
        i, key, value = self._next()
        started = time.monotonic()
        session = SessionStore(key)
        try:
            session.load() if key else None
            self._check_read(session, key)
            session[self.FIELD] = value
            session.save()
        except Exception as e:
            self.ledger.record(started, key, value, e)
            return
        self.keys[i] = session.session_key
        self.ledger.record(started, session.session_key, value, None)

    async def astep(self) -> None:
        i, key, value = self._next()
        started = time.monotonic()
        session = SessionStore(key)
        try:
            await session.aload() if key else None
            self._check_read(session, key)
            await session.aset(self.FIELD, value)
            await session.asave()
        except Exception as e:
            self.ledger.record(started, key, value, e)
            return
        self.keys[i] = session.session_key
        self.ledger.record(started, session.session_key, value, None)


def traffic_during(ledger: Ledger, drive: Callable[[], None]) -> None:
    """Run ``drive`` while 8 threads read and save 4 sessions each; then stop them.

    Every thread must finish (``run_threads`` fails the test on one still running), and a
    failure of ``drive`` is raised here.
    """

    def work(i: int) -> None:
        if i == 0:
            try:
                drive()
            finally:
                ledger.stop.set()
            return
        worker = Worker(ledger, 4)
        while not ledger.stop.is_set():
            worker.step()

    run_threads(1 + 8, work)


def break_and_heal(
    ledger: Ledger, cycles: int, fault: Callable[[], None], heal: Callable[[], None]
) -> None:
    """``cycles`` times: let saves through, break Redis until requests fail, heal it."""
    for _ in range(cycles):
        ledger.wait(saves=50)
        fault()
        ledger.wait(interrupted=10)
        heal()
    ledger.wait(saves=50)  # service is back, in the same process


async def run_tasks(
    ledger: Ledger,
    tasks: int,
    cycles: int,
    fault: Callable[[], None],
    heal: Callable[[], None] | None,
) -> None:
    """``break_and_heal`` with asyncio workers; ``heal`` None: a fault that needs no healing."""

    async def loop(worker: Worker) -> None:
        while not ledger.stop.is_set():
            await worker.astep()

    running = [asyncio.create_task(loop(Worker(ledger, 4))) for _ in range(tasks)]
    try:
        for _ in range(cycles):
            await ledger.await_(saves=50)
            await asyncio.to_thread(fault)
            if heal is not None:
                await ledger.await_(interrupted=10)
                await asyncio.to_thread(heal)
        await ledger.await_(saves=50)
    finally:
        ledger.stop.set()
        await asyncio.wait_for(asyncio.gather(*running), HANG)


def report(kind: str, ledger: Ledger, cycles: int, checked: int) -> None:
    print(
        f"\n{kind}: {cycles} faults, {ledger.saves} acknowledged saves, "
        f"{ledger.interrupted} ConnectionInterrupted, {checked} sessions verified, 0 lost"
    )


# Redis killed (SIGKILL) and restarted ----------------------------------------------------------


@pytest.mark.parametrize("cycles", CYCLES)
def test_killed_and_restarted_redis_loses_no_acknowledged_save(
    durable: RedisServer, cycles: int
) -> None:
    ledger = Ledger()
    traffic_during(ledger, lambda: break_and_heal(ledger, cycles, durable.kill, durable.start))
    report("kill -9 + restart, threads", ledger, cycles, ledger.verify())


@needs_async_api
@pytest.mark.parametrize("cycles", CYCLES)
async def test_async_killed_and_restarted_redis_loses_no_acknowledged_save(
    durable: RedisServer, cycles: int
) -> None:
    ledger = Ledger()
    await run_tasks(ledger, 20, cycles, durable.kill, durable.start)
    checked = await asyncio.to_thread(ledger.verify)
    report("kill -9 + restart, asyncio", ledger, cycles, checked)


def test_requests_during_an_outage_get_503_and_service_returns_without_restart(
    durable: RedisServer, settings: Any
) -> None:
    settings.MIDDLEWARE = MIDDLEWARE_503
    client = Client(raise_request_exception=True)
    assert client.get("/write/", {"a": "1"}).status_code == 200
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    durable.kill()
    for path in ("/read/", "/write/?b=2", "/logout/"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response["Retry-After"]
    assert client.cookies[django_settings.SESSION_COOKIE_NAME].value == key
    durable.start()
    response = client.get("/read/")
    assert response.status_code == 200
    assert json.loads(response.content) == {"a": "1"}


# Redis stalled past the timeout ----------------------------------------------------------------


@pytest.fixture
def paused(settings: Any) -> Iterator[Callable[[], None]]:
    """A Redis of the test's own, and a function that pauses it for every client.

    The server is killed afterwards: a paused Redis blocks even ``CLIENT UNPAUSE``.
    """
    server = RedisServer().start()
    settings.REDISSTORE_URL = server.url
    settings.REDISSTORE_SOCKET_TIMEOUT = TIMEOUT
    admin = server.client()

    def pause() -> None:
        admin.execute_command("CLIENT", "PAUSE", int(HANG * 1000), "ALL")

    try:
        yield pause
    finally:
        admin.close()
        server.kill()


def test_paused_redis_gives_a_timeout_error_not_a_hang(paused: Callable[[], None]) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    paused()
    started = time.monotonic()
    with pytest.raises(ConnectionInterrupted, match="timed out"):
        SessionStore(session.session_key).load()
    assert time.monotonic() - started < HANG  # it did not wait for the pause to end


@needs_async_api
async def test_async_paused_redis_gives_a_timeout_error_not_a_hang(
    paused: Callable[[], None],
) -> None:
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    paused()
    started = time.monotonic()
    with pytest.raises(ConnectionInterrupted, match="timed out"):
        await SessionStore(session.session_key).aload()
    assert time.monotonic() - started < HANG


# Connections refused, stalled or cut by a proxy -----------------------------------------------


@pytest.fixture
def proxy(settings: Any) -> Iterator[TcpProxy]:
    server = durable_server()
    try:
        with proxied(settings, server.url) as proxy:
            yield proxy
    finally:
        server.stop()


FAULTS = {
    "refused": (REFUSE, FORWARD),
    "stalled": (STALL, FORWARD),
}


@pytest.mark.parametrize("cycles", CYCLES)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_proxy_faults_mid_traffic_lose_no_acknowledged_save(
    proxy: TcpProxy, fault: str, cycles: int
) -> None:
    broken, healed = FAULTS[fault]
    ledger = Ledger()
    traffic_during(
        ledger,
        lambda: break_and_heal(
            ledger, cycles, lambda: proxy.set_mode(broken), lambda: proxy.set_mode(healed)
        ),
    )
    report(f"proxy {fault}, threads", ledger, cycles, ledger.verify())


@pytest.mark.parametrize("cycles", CYCLES)
def test_connections_cut_mid_traffic_lose_no_acknowledged_save(
    proxy: TcpProxy, cycles: int
) -> None:
    ledger = Ledger()
    cuts = 10 * cycles

    def cut_repeatedly() -> None:
        for _ in range(cuts):
            ledger.wait(saves=10)
            proxy.cut()

    traffic_during(ledger, cut_repeatedly)
    # Retries re-dial a cut connection: most cuts cost no error at all.
    assert ledger.interrupted < cuts
    report("proxy cut, threads", ledger, cuts, ledger.verify())


@needs_async_api
@pytest.mark.parametrize("cycles", CYCLES)
@pytest.mark.parametrize("fault", ["refused", "stalled", "cut"])
async def test_async_proxy_faults_mid_traffic_lose_no_acknowledged_save(
    proxy: TcpProxy, fault: str, cycles: int
) -> None:
    ledger = Ledger()
    if fault == "cut":
        cycles *= 10
        await run_tasks(ledger, 20, cycles, proxy.cut, None)
    else:
        broken, healed = FAULTS[fault]
        await run_tasks(
            ledger, 20, cycles, lambda: proxy.set_mode(broken), lambda: proxy.set_mode(healed)
        )
    checked = await asyncio.to_thread(ledger.verify)
    report(f"proxy {fault}, asyncio", ledger, cycles, checked)


# Redis that answers but cannot write ------------------------------------------------------------


def test_a_full_redis_under_noeviction_is_an_outage_not_a_crash(
    durable: RedisServer, settings: Any
) -> None:
    settings.MIDDLEWARE = MIDDLEWARE_503
    client = Client(raise_request_exception=True)
    assert client.get("/write/", {"a": "1"}).status_code == 200
    admin = durable.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # full: every write is refused with OOM
    try:
        session = SessionStore()
        session["b"] = 2
        with pytest.raises(ConnectionInterrupted, match="cannot take the command"):
            session.save()
        assert client.get("/read/").status_code == 200  # reads still work
        response = client.get("/write/", {"a": "2"})
        assert response.status_code == 503
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    assert json.loads(client.get("/write/", {"c": "3"}).content) == {"a": "1", "c": "3"}


def test_a_read_only_replica_is_an_outage_not_a_crash(durable: RedisServer, settings: Any) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    replica = RedisServer("--replicaof", "127.0.0.1", str(durable.port)).start()
    try:
        settings.REDISSTORE_URL = replica.url
        session = SessionStore()
        session["a"] = 1
        with pytest.raises(ConnectionInterrupted, match="cannot take the command"):
            session.save()
    finally:
        replica.stop()


def test_a_create_that_redis_py_sends_again_after_a_cut_is_one_session(
    redis_client: Any, redisstore: str
) -> None:
    # A connection cut after Redis ran the creating write but before its reply arrived: redis-py
    # sends the same batch again (REDISSTORE_RETRIES). The second send finds the very record the
    # first wrote: the create succeeded, once, under the first key (it used to fail as a taken
    # key, and three such cuts in a row ended the request with "no unused session key").
    store = SessionStore()
    store["cart"] = [1]
    flow = storage.create_flow(store, {"cart": [1]}, retire=None)
    batch = next(flow)
    assert isinstance(batch, list)
    flows.execute(clients.get_client(), batch)  # ran, its reply lost with the connection
    again = flows.execute(clients.get_client(), batch)  # the re-send
    with pytest.raises(StopIteration):
        flow.send(again)
    assert again[0] == 2  # the very record was there already
    names = list(redis_client.scan_iter(f"{redisstore}:s:*"))
    assert len(names) == 1
    assert SessionStore(store.session_key).load() == {"cart": [1]}
