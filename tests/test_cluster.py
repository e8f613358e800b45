"""The engine on a Redis Cluster (3 primaries, 1 replica each) through redis-py's RedisCluster.

The topology starts once per test session. Every test here also proves the layout: no command the
engine sends spans two hash slots (the servers' CROSSSLOT error counters stay at zero), and a
resharding under traffic loses nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import django
import pytest
import redis
from django.contrib.auth import SESSION_KEY
from redis.cluster import RedisCluster

from django_redisstore import clients, keys, keyspace
from django_redisstore.exceptions import ConnectionInterrupted
from django_redisstore.scripts import ALL, SAVE
from django_redisstore.session import SessionStore

from .conftest import CLUSTER_PASSWORD
from .contract import Contract, index_members, stored_name
from .django_versions import needs_async_api
from .redis_servers import Cluster, RedisServer

pytestmark = pytest.mark.usefixtures("on_cluster")


def command_calls(server: RedisServer, command: str) -> int:
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def primary_of(cluster: Cluster, cluster_client: RedisCluster, key: str) -> RedisServer:
    port = cluster_client.get_node_from_key(key).port
    return next(s for s in cluster.servers if s.port == port)


class TestClusterContract(Contract):
    @pytest.fixture(autouse=True)
    def _raw_client(self, cluster_client: RedisCluster) -> None:
        self.redis = cluster_client


def test_sessions_spread_over_every_primary(cluster: Cluster, redisstore: str) -> None:
    for _ in range(60):
        SessionStore().create()
    per_primary = []
    for server in cluster.primaries:
        with server.client() as client:
            per_primary.append(len(list(client.scan_iter(f"{redisstore}:s:*"))))
    assert sum(per_primary) == 60
    assert all(count > 0 for count in per_primary), per_primary


def test_scans_visit_every_primary_and_no_replica(
    cluster_client: RedisCluster, redisstore: str
) -> None:
    sessions = [SessionStore() for _ in range(30)]
    for session in sessions:
        session.create()
    expected = sorted(stored_name(s).encode() for s in sessions)
    pattern = f"{redisstore}:s:*"
    found = [n for step in keyspace.scan_batches(cluster_client, pattern, 5) for n in step.names]
    assert sorted(found) == expected  # each once: the replicas hold copies, and are not scanned

    async def scan() -> list[bytes]:
        client = clients.get_async_client()
        try:
            steps = keyspace.ascan_batches(client, pattern)
            return [name async for step in steps for name in step.names]
        finally:
            await clients.aclose()

    assert sorted(asyncio.run(scan())) == expected


def test_a_lost_script_cache_falls_back_to_eval(
    cluster: Cluster, cluster_client: RedisCluster
) -> None:
    session = SessionStore()
    session["n"] = 1
    session.save()
    for server in cluster.primaries:
        with server.client() as client:
            client.script_flush()
    reader = SessionStore(session.session_key)
    reader[SESSION_KEY] = "5"  # a save with index upkeep: two EVALSHA in one pipeline
    reader.save()
    assert SessionStore(session.session_key)[SESSION_KEY] == "5"
    assert index_members(cluster_client, "5") == {keys.session_id(session.session_key or "")}
    primary = primary_of(cluster, cluster_client, stored_name(session))
    with primary.client() as client:
        assert client.script_exists(SAVE.sha) == [True]  # EVAL loaded it where the key lives


def test_wait_replicas_waits_on_the_primary_of_the_session(
    settings: Any, cluster: Cluster, cluster_client: RedisCluster
) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 1
    session = SessionStore()
    session["a"] = 1
    session.create()
    session["a"] = 2
    session.save()  # the first SAVE on a node may cost an EVAL fallback: a second WAIT
    name = stored_name(session)
    primary = primary_of(cluster, cluster_client, name)
    before = {s.port: command_calls(s, "wait") for s in cluster.primaries}
    session["a"] = 3
    session.save()
    after = {s.port: command_calls(s, "wait") for s in cluster.primaries}
    assert {port: after[port] - before[port] for port in after} == {
        s.port: int(s is primary) for s in cluster.primaries
    }
    with primary.client() as client:
        replica_port = client.info("replication")["slave0"]["port"]
    with redis.Redis(host="127.0.0.1", port=replica_port, password=CLUSTER_PASSWORD) as client:
        client.execute_command("READONLY")
        assert client.get(name) == cluster_client.get(name)


@needs_async_api
async def test_async_wait_replicas_waits_on_the_primary_of_the_session(
    settings: Any, cluster: Cluster, cluster_client: RedisCluster
) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 1
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()  # the client's first command: WAIT needs its slot map already
    await session.aset("a", 2)
    await session.asave()  # the first SAVE on a node may cost an EVAL fallback: a second WAIT
    primary = primary_of(cluster, cluster_client, stored_name(session))
    before = {s.port: command_calls(s, "wait") for s in cluster.primaries}
    await session.aset("a", 3)
    await session.asave()
    after = {s.port: command_calls(s, "wait") for s in cluster.primaries}
    assert {port: after[port] - before[port] for port in after} == {
        s.port: int(s is primary) for s in cluster.primaries
    }


def moved_between_read_and_save(
    cluster: Cluster, cluster_client: RedisCluster, session: SessionStore
) -> tuple[RedisServer, RedisServer]:
    """Move the session's slot to another primary after its read (the engine's slot map goes
    stale: its save meets MOVED); returns (old primary, new primary)."""
    name = stored_name(session)
    source = primary_of(cluster, cluster_client, name)
    target = next(s for s in cluster.primaries if s is not source)
    with target.client() as client:
        for script in ALL:  # no NOSCRIPT fallback there: one WAIT per batch to count
            client.script_load(script.source)
    cluster.move_slots([cluster_client.keyslot(name)], source, target)
    return source, target


@pytest.mark.parametrize("api", ["sync", pytest.param("async", marks=needs_async_api)])
def test_wait_replicas_follows_a_write_redirected_by_moved(
    settings: Any, cluster: Cluster, cluster_client: RedisCluster, api: str, caplog: Any
) -> None:
    settings.REDISSTORE_WAIT_REPLICAS = 1
    session = SessionStore()
    session["a"] = 1
    session.save()
    reader = SessionStore(session.session_key)

    async def read_move_save() -> tuple[RedisServer, RedisServer]:
        try:
            assert await reader.aget("a") == 1
            moved = moved_between_read_and_save(cluster, cluster_client, reader)
            before.update({s.port: command_calls(s, "wait") for s in cluster.primaries})
            await reader.aset("a", 2)
            await reader.asave()
            return moved
        finally:
            await clients.aclose()

    before: dict[int, int] = {}
    if api == "sync":
        assert reader["a"] == 1
        source, target = moved_between_read_and_save(cluster, cluster_client, reader)
        before = {s.port: command_calls(s, "wait") for s in cluster.primaries}
        reader["a"] = 2
        reader.save()
    else:
        source, target = asyncio.run(read_move_save())
    try:
        after = {s.port: command_calls(s, "wait") for s in cluster.primaries}
        waited = {port: after[port] - before[port] for port in after}
        assert waited[target.port] == 1  # the node that took the write waited for it
        assert "replicas acknowledged" not in caplog.text
        name = stored_name(reader)
        with target.client() as client:
            replica_port = client.info("replication")["slave0"]["port"]
        with redis.Redis(host="127.0.0.1", port=replica_port, password=CLUSTER_PASSWORD) as client:
            client.execute_command("READONLY")
            assert client.get(name) == cluster_client.get(name)  # WAIT returned: it is there
        assert SessionStore(reader.session_key)["a"] == 2
    finally:
        cluster.move_slots([cluster_client.keyslot(stored_name(reader))], target, source)


def test_unreachable_cluster_raises_connection_interrupted(settings: Any) -> None:
    settings.REDISSTORE_CLUSTER_NODES = ["127.0.0.1:1"]
    settings.REDISSTORE_CONNECT_TIMEOUT = 0.2
    with pytest.raises(ConnectionInterrupted, match=r"Redis Cluster \(start nodes 127.0.0.1:1\)"):
        SessionStore("abcdefghijklmnopqrstuvwxyz012345").load()


def test_resharding_under_traffic_loses_no_session(
    cluster: Cluster, cluster_client: RedisCluster, redisstore: str
) -> None:
    sessions = []
    for i in range(120):
        session = SessionStore()
        session["n"] = 0
        if i % 3 == 0:
            session[SESSION_KEY] = str(i % 9)
        session.save()
        sessions.append(session.session_key)
    counts = dict.fromkeys(sessions, 0)
    stop = threading.Event()
    errors: list[BaseException] = []
    has_async = django.VERSION >= (5, 1)  # Django's async session API
    done = {"sync": 0, "async": 0} if has_async else {"sync": 0}

    def sync_traffic() -> None:
        i = 0
        while not stop.is_set():
            key = sessions[i % len(sessions)]
            try:
                session = SessionStore(key)
                assert session["n"] == counts[key], f"session {key} lost an update"
                session["n"] += 1
                session.save()
                counts[key] += 1
                done["sync"] += 1
            except BaseException as e:
                errors.append(e)
                return
            i += 1

    async def async_traffic() -> None:
        try:
            while not stop.is_set():
                session = SessionStore()
                await session.aset(SESSION_KEY, "async")
                await session.asave()
                assert await SessionStore(session.session_key).aget(SESSION_KEY) == "async"
                await session.adelete()
                done["async"] += 1
        except BaseException as e:
            errors.append(e)
        finally:
            await clients.aclose()

    workers = [threading.Thread(target=sync_traffic)]
    if has_async:
        workers.append(threading.Thread(target=asyncio.run, args=(async_traffic(),)))
    for worker in workers:
        worker.start()
    source, target = cluster.primaries[0], cluster.primaries[1]
    # The slots that hold this test's keys on one primary, and as many empty ones (moving all
    # 5000-odd slots would take the suite half a minute and test nothing more).
    with source.client() as client:
        ours = {cluster_client.keyslot(k) for k in client.scan_iter(f"{redisstore}:*")}
    owned = cluster.slots_of(source)
    slots = sorted(ours | set(owned[: len(ours)]))
    try:
        while min(done.values()) < 20 and not errors:
            time.sleep(0.01)  # let traffic start before the first slot moves
        before = dict(done)
        redirections = cluster.error_count("ASK", "MOVED")
        moved = cluster.move_slots(slots, source, target)
        moved += cluster.move_slots(slots, target, source)  # and back, still under traffic
        during = {kind: done[kind] - before[kind] for kind in done}
        redirections = cluster.error_count("ASK", "MOVED") - redirections
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert errors == []
    # Traffic ran while keys moved, and met slots in motion (redis-py followed the redirections).
    assert len(ours) > 10 and moved >= len(ours) and min(during.values()) > 0, (moved, during)
    assert redirections > 0
    for key in sessions:
        assert SessionStore(key)["n"] == counts[key]
    for user in {str(i % 9) for i in range(0, 120, 3)}:
        expected = {keys.session_id(k) for i, k in enumerate(sessions) if i % 9 == int(user)}
        assert index_members(cluster_client, user) == expected
    assert index_members(cluster_client, "async") == set()
