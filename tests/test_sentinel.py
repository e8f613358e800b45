"""The engine behind Redis Sentinel (a primary, a replica, 3 Sentinels) through redis-py's
``Sentinel.master_for``; and a failover while requests run.

Both the data servers and the Sentinels have passwords, each its own: the settings pass one in
``REDISSTORE_CONNECTION_OPTIONS`` and the other in ``REDISSTORE_SENTINEL_OPTIONS``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY

from django_redisstore import clients, keys
from django_redisstore.exceptions import ConnectionInterrupted
from django_redisstore.session import SessionStore

from .contract import Contract, index_members, stored_name
from .django_versions import needs_async_api
from .redis_servers import RoundTrips, SentinelGroup, delete_keys, wait_until

#: Sentinel settings of the test topology (down after 1 s, failover timeout 3 s), plus the time
#: a client needs to notice: the bound within which requests must work again after a kill.
RESUME_WITHIN = 1 + 3 + 5


def use_sentinels(settings: Any, group: SentinelGroup) -> None:
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_SENTINELS = group.addresses
    settings.REDISSTORE_SENTINEL_SERVICE = group.service
    settings.REDISSTORE_SENTINEL_OPTIONS = {"password": group.sentinel_password}
    settings.REDISSTORE_CONNECTION_OPTIONS = {"password": group.password}
    clients.reset()


def primary_client(group: SentinelGroup) -> redis.Redis:
    return group.server_at(group.primary_address()[1]).client()


@pytest.fixture(autouse=True)
def on_sentinel(settings: Any, redisstore: str, sentinel_group: SentinelGroup) -> Iterator[None]:
    use_sentinels(settings, sentinel_group)
    yield  # the suite resets the clients once the async ones are closed
    with primary_client(sentinel_group) as client:
        delete_keys(client, f"{redisstore}:*")


class TestSentinelContract(Contract):
    @pytest.fixture(autouse=True)
    def _raw_client(self, sentinel_group: SentinelGroup) -> Iterator[None]:
        self.redis = primary_client(sentinel_group)
        yield
        self.redis.close()


def test_sessions_are_written_to_the_primary_sentinel_names(sentinel_group: SentinelGroup) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    with primary_client(sentinel_group) as client:
        assert client.exists(stored_name(session)) == 1
        assert client.info("replication")["role"] == "master"


def test_wait_replicas_costs_no_extra_round_trip(
    settings: Any, sentinel_group: SentinelGroup, round_trips: RoundTrips, caplog: Any
) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 1
    SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()  # connect (asks the Sentinels)
    with sentinel_group.primary.client() as primary:
        waits = primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
    before = round_trips.count
    session = SessionStore()
    session["a"] = 1
    session.create()
    assert round_trips.count - before == 1  # SET NX and WAIT in one pipeline
    with sentinel_group.primary.client() as primary:
        assert primary.info("commandstats")["cmdstat_wait"]["calls"] == waits + 1
    # WAIT returned: the replica holds the record already.
    with sentinel_group.replica.client() as replica:
        assert replica.get(stored_name(session)) is not None
    assert "replicas acknowledged" not in caplog.text


def test_writes_resent_as_eval_are_waited_for_too(
    settings: Any, sentinel_group: SentinelGroup, caplog: Any
) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 1
    session = SessionStore()
    session["a"] = 1
    session.save()
    with sentinel_group.primary.client() as primary:
        primary.script_flush()  # as after a restart: the next EVALSHA answers NOSCRIPT
        waits = primary.info("commandstats")["cmdstat_wait"]["calls"]
    reader = SessionStore(session.session_key)
    reader[SESSION_KEY] = "3"
    reader.save()  # SAVE and INDEX_ADD: NOSCRIPT, then both again as EVAL, each batch waited for
    with sentinel_group.primary.client() as primary:
        assert primary.info("commandstats")["cmdstat_wait"]["calls"] == waits + 2
    with sentinel_group.replica.client() as replica:
        assert index_members(replica, "3") == {keys.session_id(session.session_key or "")}
    assert "replicas acknowledged" not in caplog.text


def test_wait_replicas_warns_when_too_few_replicas_answer(settings: Any, caplog: Any) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 2  # the topology has one replica
    settings.REDISSTORE_WAIT_TIMEOUT = 0.05
    session = SessionStore()
    session["a"] = 1
    with caplog.at_level(logging.WARNING, logger="django_redisstore"):
        session.save()
    assert "Only 1 of 2 replicas acknowledged the write to" in caplog.text
    assert SessionStore(session.session_key)["a"] == 1  # the write itself stands


def test_unreachable_sentinels_raise_connection_interrupted(
    settings: Any, sentinel_group: SentinelGroup
) -> None:
    settings.REDISSTORE_SENTINELS = ["127.0.0.1:1"]
    settings.REDISSTORE_CONNECT_TIMEOUT = 0.2
    with pytest.raises(ConnectionInterrupted) as raised:
        SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()
    message = str(raised.value)
    assert f"Sentinel service {sentinel_group.service!r}" in message
    assert "sentinels 127.0.0.1:1" in message
    assert sentinel_group.password not in message
    assert sentinel_group.sentinel_password not in message


class Tally:
    """What the requests of one signed-in session saw: read, increment, save, in a loop.

    Records when each request succeeded or was interrupted, and anything else that went wrong:
    an empty session for one that exists (a silent sign-out) or a lost increment.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.acknowledged = 0  # the last count whose save returned
        self.attempted = 0  # the count of a save that raised: it may or may not have landed
        self.successes: list[float] = []
        self.interruptions: list[str] = []
        self.failures: list[BaseException] = []

    def next_count(self, stored: Any) -> int:
        """The count to save after ``stored``, the one the session holds: never one older than
        the last acknowledged save."""
        if stored is None:
            raise AssertionError(f"session {self.key} came back empty")
        if stored not in (self.acknowledged, self.attempted):
            raise AssertionError(f"count {stored}, saved {self.acknowledged}")
        self.acknowledged = stored
        self.attempted = stored + 1
        return self.attempted

    def saved(self) -> None:
        self.acknowledged = self.attempted
        self.successes.append(time.monotonic())


class Worker(threading.Thread):
    """Sync traffic: requests of one session in a loop, in a thread."""

    def __init__(self, tally: Tally, stop: threading.Event) -> None:
        super().__init__()
        self.tally = tally
        self.stop = stop

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                session = SessionStore(self.tally.key)
                session["n"] = self.tally.next_count(session.get("n"))
                session.save()
                self.tally.saved()
            except ConnectionInterrupted as e:
                self.tally.interruptions.append(str(e))
                self.stop.wait(0.05)  # as a client would before trying again
            except BaseException as e:
                self.tally.failures.append(e)
                return


class AsyncWorkers(threading.Thread):
    """Async traffic: the requests of every session in a loop, as tasks of one event loop
    (``redis.asyncio`` through Sentinel), in a thread of its own."""

    def __init__(self, tallies: list[Tally], stop: threading.Event) -> None:
        super().__init__()
        self.tallies = tallies
        self.stop = stop

    def run(self) -> None:
        asyncio.run(self._all())

    async def _all(self) -> None:
        try:
            await asyncio.gather(*(self._one(tally) for tally in self.tallies))
        finally:
            await clients.aclose()

    async def _one(self, tally: Tally) -> None:
        while not self.stop.is_set():
            try:
                session = SessionStore(tally.key)
                await session.aset("n", tally.next_count(await session.aget("n")))
                await session.asave()
                tally.saved()
            except ConnectionInterrupted as e:
                tally.interruptions.append(str(e))
                await asyncio.sleep(0.05)
            except BaseException as e:
                tally.failures.append(e)
                return


#: redis.asyncio drops some connections to the primary that SIGKILL took away without closing
#: them (in its reconnect path, not the engine's: the engine's clients are closed with aclose()
#: when the loop ends); the garbage collector reports their sockets, which the test collects
#: before it ends so that the report lands here. This test is about the sessions, which it
#: checks; those sockets are not the engine's to close.
_DEAD_PRIMARY_SOCKETS = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.mark.parametrize(
    "traffic",
    ["sync", pytest.param("async", marks=[needs_async_api, _DEAD_PRIMARY_SOCKETS])],
)
def test_failover_resumes_on_the_new_primary_without_losing_a_session(
    settings: Any, redisstore: str, traffic: str
) -> None:
    """Kill the primary while requests run (sync, or async through ``redis.asyncio``): they fail
    with ConnectionInterrupted until the Sentinels promote the replica, then resume there with
    every acknowledged write."""
    group = SentinelGroup().start()  # a topology of its own: this test breaks it
    workers: list[Tally] = []
    runners: list[threading.Thread] = []
    stop = threading.Event()
    try:
        use_sentinels(settings, group)
        settings.REDISSTORE_WAIT_REPLICAS = 1  # an acknowledged save is on the replica
        settings.REDISSTORE_WAIT_TIMEOUT = 0.5
        for user in range(4):
            session = SessionStore()
            session["n"] = 0
            session[SESSION_KEY] = str(user)
            session.save()
            workers.append(Tally(session.session_key or ""))
        if traffic == "sync":
            runners = [Worker(tally, stop) for tally in workers]
        else:
            runners = [AsyncWorkers(workers, stop)]
        for runner in runners:
            runner.start()
        wait_until(lambda: all(len(w.successes) >= 5 for w in workers), 10, "steady traffic")
        old = group.primary_address()
        group.primary.kill()
        killed = time.monotonic()
        wait_until(lambda: group.primary_address() != old, RESUME_WITHIN, "a new primary")
        wait_until(
            lambda: all(w.failures or (w.successes and w.successes[-1] > killed) for w in workers),
            RESUME_WITHIN,
            "requests to resume",
        )
        new = group.primary_address()
        with group.replica.client() as promoted:  # the index survived the failover
            indexes = [index_members(promoted, str(user)) for user in range(4)]
        stop.set()
        for runner in runners:
            runner.join()
        finals = [SessionStore(w.key)["n"] for w in workers]  # what the new primary holds
    finally:
        stop.set()
        for runner in runners:
            runner.join()
        failures = [f for w in workers for f in w.failures]
        clients.reset()
        group.stop()
        gc.collect()  # what redis.asyncio left of the dead primary's sockets: within this test
    assert failures == []
    for worker in workers:
        resumed = min(t for t in worker.successes if t > killed) - killed
        assert resumed < RESUME_WITHIN
        assert worker.interruptions, "the kill interrupted no request"
        assert all(group.service in message for message in worker.interruptions)
    assert new == ("127.0.0.1", group.replica.port)
    # No acknowledged write was lost: the last count saved, or one whose save raised.
    assert all(n in (w.acknowledged, w.attempted) for n, w in zip(finals, workers, strict=True))
    assert indexes == [{keys.session_id(w.key)} for w in workers]
