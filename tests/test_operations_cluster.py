"""The bulk helpers on a real three-primary Redis Cluster: every primary is walked, keys are
handled on the node that holds them, and multi-key deletes never cross a slot."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
import redis.cluster

from django_redisstore import connection, operations
from django_redisstore.session import SessionStore

from .redis_servers import RedisServer, stop_all


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster() -> Iterator[redis.cluster.RedisCluster]:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is needed to create a cluster")
    servers = [
        RedisServer(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", port=cluster_port()
        )
        for _ in range(3)
    ]
    try:
        for server in servers:
            server.start()
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{server.port}" for server in servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 20
        while any(
            server.client().cluster("info").get("cluster_state") != "ok" for server in servers
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not come up")
            time.sleep(0.1)
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=servers[0].port)
        yield client
        client.close()
    finally:
        stop_all(servers)


@pytest.fixture
def on_cluster(
    cluster: redis.cluster.RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> redis.cluster.RedisCluster:
    """Point the engine and the bulk tools at the cluster client."""
    monkeypatch.setattr(connection, "get_client", lambda: cluster)
    monkeypatch.setattr(operations, "get_client", lambda: cluster)
    return cluster


def test_scan_batches_walks_every_primary_and_names_the_node(
    cluster: redis.cluster.RedisCluster, redisstore: str
) -> None:
    names = {f"{redisstore}:walk:{i}".encode() for i in range(300)}
    for name in names:
        cluster.set(name, b"1", ex=60)

    found: set[bytes] = set()
    nodes = set()
    for node, batch, done in connection.scan_batches(cluster, f"{redisstore}:walk:*", 50):
        for name in batch:
            assert node.exists(name)  # the node named holds the key
        found.update(batch)
        nodes.add(id(node))
        assert 0 <= done <= 1

    assert found == names
    assert len(nodes) == 3
    assert connection.unlink(cluster, sorted(names)) == 300  # keys of many slots
    assert not any(cluster.exists(name) for name in names)


async def test_async_scan_walks_every_primary(
    cluster: redis.cluster.RedisCluster, redisstore: str
) -> None:
    import redis.asyncio.cluster

    names = {f"{redisstore}:awalk:{i}".encode() for i in range(100)}
    for name in names:
        cluster.set(name, b"1", ex=60)
    port = cluster.get_default_node().port
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port)
    try:
        found = set()
        async for _, batch, _ in connection.ascan_batches(client, f"{redisstore}:awalk:*", 20):
            found.update(batch)
    finally:
        await client.aclose()

    assert found == names
    assert connection.unlink(cluster, sorted(names)) == 100


def test_walk_inspect_and_purges_on_a_cluster(
    on_cluster: redis.cluster.RedisCluster,
) -> None:
    for user in range(20):
        session = SessionStore()
        session["_auth_user_id"] = str(user % 5)
        session.save()
    for _ in range(10):
        session = SessionStore()
        session["cart"] = [1]
        session.save()

    summary = operations.summarize()
    assert (summary.total, summary.authenticated, summary.users) == (30, 20, 5)
    assert operations.purge_matching(operations.anonymous, dry_run=False) == 10
    assert operations.purge_user("3", dry_run=False) == 4
    assert operations.purge_all(dry_run=False) == 16
    assert operations.summarize().total == 0
