"""Concurrency torture: many threads and asyncio tasks on one session and across many.

Invariants checked afterwards, on a Redis server of the module's own (so that "every key" means
every key):

* no lost update: the keys of every acknowledged save to a shared session are there, and those
  of a save that gave up (``RedisStoreError`` after too many conflicting writes in a row: a loud
  failure, never a partial write) are not;
* last writer wins: the final value of a key everybody writes is that of a save that no other
  save started after;
* no key without a TTL, anywhere;
* the sessions in Redis are exactly the live ones: none deleted or cycled away came back;
* before any pruning: every live signed-in session is in its user's index, with a score past
  its expiry; with one worker (no races), the indexes hold nothing else: no entry of an ended
  session, none under a user the session is not (or no longer) of;
* after pruning (read each index, drop members whose session is gone, as readers do), no entry
  points to a session that is gone.

The suite runs a few hundred operations per test; ``pytest -m slow`` runs the soak variants.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError

from django_redisstore import keys
from django_redisstore.exceptions import RedisStoreError
from django_redisstore.session import SessionStore

from .command_helpers import saved_key
from .django_versions import needs_async_api
from .redis_servers import RedisServer
from .threads import run_threads

#: (workers, operations per worker): the suite's size, and the soak run's. One shared session
#: gains a key per save, so its soak stays smaller: each save rewrites the whole session.
SIZES_ONE = [(8, 60), pytest.param((16, 150), marks=pytest.mark.slow, id="soak")]
SIZES_MANY = [(8, 60), pytest.param((32, 1000), marks=pytest.mark.slow, id="soak")]
USERS = ["1", "2", "3", "4"]


@pytest.fixture
def server(own_server: RedisServer, settings: Any) -> Iterator[redis.Redis]:
    """An empty Redis that only this test writes to; the engine points at it."""
    settings.REDISSTORE_URL = own_server.url
    client = own_server.client()
    client.flushall()
    try:
        yield client
    finally:
        client.close()


def name_of(session_key: str) -> bytes:
    return keys.session_name(keys.session_id(session_key)).encode()


# One session, many writers -----------------------------------------------------------------


@dataclass
class Writes:
    """Every acknowledged save of the shared key: (value, started, returned); and the saves
    that gave up."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: list[tuple[str, float, float]] = field(default_factory=list)
    gave_up: set[str] = field(default_factory=set)

    def add(self, value: str, started: float) -> None:
        with self.lock:
            self.done.append((value, started, time.monotonic()))

    def give_up(self, value: str, error: RedisStoreError) -> None:
        assert "conflicting writes" in str(error), error
        with self.lock:
            self.gave_up.add(value)

    def check_last_writer_won(self, final: str) -> None:
        by_value = {value: returned for value, _, returned in self.done}
        assert final in by_value, "the final value is not one that a save acknowledged"
        later = [v for v, started, _ in self.done if started > by_value[final]]
        assert later == [], f"saves started after the winner returned were lost: {later[:3]}"


def write_step(key: str, worker: int, op: int, writes: Writes) -> None:
    session = SessionStore(key)
    session[f"w{worker}-{op}"] = op
    session["last"] = f"{worker}-{op}"
    started = time.monotonic()
    try:
        session.save()
    except RedisStoreError as e:
        writes.give_up(f"{worker}-{op}", e)
    else:
        writes.add(f"{worker}-{op}", started)


async def awrite_step(key: str, worker: int, op: int, writes: Writes) -> None:
    session = SessionStore(key)
    await session.aset(f"w{worker}-{op}", op)
    await session.aset("last", f"{worker}-{op}")
    started = time.monotonic()
    try:
        await session.asave()
    except RedisStoreError as e:
        writes.give_up(f"{worker}-{op}", e)
    else:
        writes.add(f"{worker}-{op}", started)


def check_one_session(key: str, workers: int, ops: int, writes: Writes) -> None:
    data = SessionStore(key).load()
    assert len(writes.done) + len(writes.gave_up) == workers * ops
    missing = [f"w{value}" for value, _, _ in writes.done if f"w{value}" not in data]
    assert missing == [], f"{len(missing)} acknowledged updates lost, e.g. {missing[:5]}"
    landed = [value for value in writes.gave_up if f"w{value}" in data]
    assert landed == [], f"saves that gave up were written: {landed[:5]}"
    writes.check_last_writer_won(data["last"])
    assert len(writes.done) > len(writes.gave_up)
    print(
        f"\none session, {workers} writers: {len(writes.done)} saves acknowledged, "
        f"{len(writes.gave_up)} gave up after repeated conflicts, none lost or half-written"
    )


@pytest.mark.parametrize("size", SIZES_ONE)
def test_threads_on_one_session_lose_no_update_and_the_last_writer_wins(
    server: redis.Redis, size: tuple[int, int]
) -> None:
    workers, ops = size
    key = saved_key()
    writes = Writes()

    def work(worker: int) -> None:
        for op in range(ops):
            write_step(key, worker, op, writes)

    run_threads(workers, work)
    check_one_session(key, workers, ops, writes)
    check_redis(server, live={key}, retired=set())


@needs_async_api
@pytest.mark.parametrize("size", SIZES_ONE)
async def test_tasks_on_one_session_lose_no_update_and_the_last_writer_wins(
    server: redis.Redis, size: tuple[int, int]
) -> None:
    workers, ops = size
    key = saved_key()
    writes = Writes()

    async def work(worker: int) -> None:
        for op in range(ops):
            await awrite_step(key, worker, op, writes)

    await asyncio.gather(*(work(w) for w in range(workers)))
    await asyncio.to_thread(check_one_session, key, workers, ops, writes)
    check_redis(server, live={key}, retired=set())


# Many sessions, every kind of operation ------------------------------------------------------


class Pool:
    """The sessions the workers share; which keys are live and which were ended or replaced."""

    def __init__(self, size: int) -> None:
        self.lock = threading.Lock()
        self.slots = [saved_key(n=0) for _ in range(size)]
        self.live = set(self.slots)
        self.retired: set[str] = set()
        self.ops = 0
        self.conflicts = 0
        self.gave_up = 0

    def pick(self, rng: random.Random) -> tuple[int, str]:
        with self.lock:
            i = rng.randrange(len(self.slots))
            return i, self.slots[i]

    def settle(self, i: int, old: str, session: SessionStore, ended: bool) -> None:
        """Book the outcome of one operation on slot ``i``, which held ``old``."""
        with self.lock:
            self.ops += 1
            new = session.session_key
            if ended or (new is not None and new != old):
                # ``old`` was deleted or cycled away: it must never exist again.
                self.retired.add(old)
                self.live.discard(old)
            if new is not None and new != old:
                self.live.add(new)  # a cycled key, or a new session after a stale cookie
                if self.slots[i] == old:
                    self.slots[i] = new
            if ended and self.slots[i] == old:
                self.slots[i] = ""  # refilled by the next operation on the slot

    def give_up(self, error: RedisStoreError) -> None:
        """A save that met too many conflicting writes in a row: it wrote nothing."""
        assert "conflicting writes" in str(error), error
        with self.lock:
            self.gave_up += 1

    def refill(self, i: int) -> None:
        key = saved_key(n=0)
        with self.lock:
            self.live.add(key)
            if self.slots[i] == "":
                self.slots[i] = key


OPERATIONS = ["write", "write", "write", "login", "logout", "expiry", "cycle", "delete"]


def mixed_step(pool: Pool, rng: random.Random) -> None:
    i, key = pool.pick(rng)
    if not key:
        pool.refill(i)
        return
    operation = rng.choice(OPERATIONS)
    session = SessionStore(key)
    ended = False
    try:
        session.load()
        if operation == "delete":
            session.flush()
            ended = True
        elif operation == "cycle":
            session.cycle_key()
        else:
            change(session, operation, rng)
            session.save()
    except UpdateError:  # deleted or cycled by another worker meanwhile: never recreated
        with pool.lock:
            pool.conflicts += 1
    except RedisStoreError as e:
        pool.give_up(e)
    pool.settle(i, key, session, ended)


async def amixed_step(pool: Pool, rng: random.Random) -> None:
    i, key = pool.pick(rng)
    if not key:
        await asyncio.to_thread(pool.refill, i)
        return
    operation = rng.choice(OPERATIONS)
    session = SessionStore(key)
    ended = False
    try:
        await session.aload()
        if operation == "delete":
            await session.aflush()
            ended = True
        elif operation == "cycle":
            await session.acycle_key()
        else:
            change(session, operation, rng)
            await session.asave()
    except UpdateError:
        with pool.lock:
            pool.conflicts += 1
    except RedisStoreError as e:
        pool.give_up(e)
    pool.settle(i, key, session, ended)


def change(session: SessionStore, operation: str, rng: random.Random) -> None:
    """Change the loaded ``session`` in memory (no I/O: the data is already loaded)."""
    session.modified = True
    if operation == "write":
        session._session["n"] = session._session.get("n", 0) + 1
    elif operation == "login":
        session._session[SESSION_KEY] = rng.choice(USERS)
    elif operation == "logout":
        session._session.pop(SESSION_KEY, None)
    elif operation == "expiry":
        session._session["_session_expiry"] = rng.randint(600, 7200)


def check_redis(
    client: redis.Redis, live: set[str], retired: set[str], *, exact: bool = False
) -> dict[str, int]:
    """The invariants on the whole of Redis; returns what was checked.

    First on Redis as the engine left it (nothing pruned yet); then after pruning each index as
    readers do. With ``exact`` (one worker, so no race can leave an entry behind), the indexes
    before pruning hold exactly the live signed-in sessions, each under its own user.
    """
    everything = list(client.scan_iter(count=1000))
    no_ttl = [k for k in everything if client.pttl(k) == -1]
    assert no_ttl == [], f"keys without a TTL: {no_ttl[:5]}"

    sessions = {k for k in everything if b":s:" in k}
    expected = {name_of(k) for k in live}
    back = {k for k in retired if client.exists(name_of(k))}
    assert back == set(), f"{len(back)} ended sessions came back"
    assert sessions == expected, (
        f"{len(sessions - expected)} unexpected, {len(expected - sessions)} missing"
    )

    # Before pruning: the indexes as the engine wrote them.
    now = time.time()
    index_names = [k for k in everything if b":u:" in k]
    indexed = {
        name.decode().rsplit(":", 1)[1]: {
            m.decode(): score for m, score in client.zrange(name, 0, -1, withscores=True)
        }
        for name in index_names
    }
    owner: dict[str, str | None] = {}
    for key in live:
        user = SessionStore(key).load().get(SESSION_KEY)
        sid = keys.session_id(key)
        owner[sid] = user
        if user is None:
            continue
        assert sid in indexed.get(user, {}), f"signed-in session {sid} missing from index {user}"
        expires = now + client.pttl(name_of(key)) / 1000
        assert indexed[user][sid] >= expires - 1, f"index entry of {sid} expires before it"
    stale = [(u, sid) for u, entries in indexed.items() for sid in entries if sid not in owner]
    misfiled = [
        (u, sid)
        for u, entries in indexed.items()
        for sid in entries
        if sid in owner and owner[sid] != u
    ]
    if exact:
        assert stale == [], f"entries of ended sessions left in the index: {stale[:5]}"
        assert misfiled == [], f"entries under a user the session is not of: {misfiled[:5]}"

    # After pruning (drop members whose session is gone, as readers do): none points nowhere.
    for name in index_names:
        prefix = name.decode().rsplit(":u:", 1)[0]
        gone = [
            m for m in client.zrange(name, 0, -1) if not client.exists(f"{prefix}:s:{m.decode()}")
        ]
        if gone:
            client.zrem(name, *gone)
        left = client.zrange(name, 0, -1)
        assert all(client.exists(f"{prefix}:s:{m.decode()}") for m in left)
    return {
        "keys": len(everything),
        "signed_in": sum(user is not None for user in owner.values()),
        "stale_pruned": len(stale),
        "misfiled_before_pruning": len(misfiled),
    }


def report(kind: str, pool: Pool, checked: dict[str, int]) -> None:
    print(
        f"\n{kind}: {pool.ops} operations, {pool.conflicts} UpdateError, {pool.gave_up} gave up, "
        f"{len(pool.retired)} sessions ended or cycled (none back), {checked}"
    )


def test_one_worker_across_many_sessions_keeps_each_index_exact(server: redis.Redis) -> None:
    pool = Pool(12)
    rng = random.Random(7)
    for _ in range(400):
        mixed_step(pool, rng)

    checked = check_redis(server, pool.live, pool.retired, exact=True)
    assert pool.conflicts == 0 and pool.gave_up == 0  # alone, nothing can race it
    report("one worker, many sessions", pool, checked)


@pytest.mark.parametrize("size", SIZES_MANY)
def test_threads_across_many_sessions_keep_every_invariant(
    server: redis.Redis, size: tuple[int, int]
) -> None:
    workers, ops = size
    pool = Pool(12)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(ops):
            mixed_step(pool, rng)

    run_threads(workers, work)
    report("threads, many sessions", pool, check_redis(server, pool.live, pool.retired))


@needs_async_api
@pytest.mark.parametrize("size", SIZES_MANY)
async def test_tasks_across_many_sessions_keep_every_invariant(
    server: redis.Redis, size: tuple[int, int]
) -> None:
    workers, ops = size
    pool = await asyncio.to_thread(Pool, 12)

    async def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(ops):
            await amixed_step(pool, rng)

    await asyncio.gather(*(work(seed) for seed in range(workers)))
    checked = await asyncio.to_thread(check_redis, server, pool.live, pool.retired)
    report("asyncio, many sessions", pool, checked)
