"""The bulk helpers on a real three-primary Redis Cluster: every primary is walked, keys are
handled on the node that holds them, and multi-key deletes never cross a slot.

``sessions inspect``/``purge`` on the cluster: ``TestClusterContract`` (tests/contract.py)."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from django_redisstore import clients, keyspace

pytestmark = pytest.mark.usefixtures("on_cluster")


def test_scan_batches_walks_every_primary_and_names_the_node(
    cluster_client: RedisCluster, redisstore: str
) -> None:
    names = {f"{redisstore}:walk:{i}".encode() for i in range(300)}
    for name in names:
        cluster_client.set(name, b"1", ex=60)

    found: set[bytes] = set()
    nodes = set()
    for node, batch, done in keyspace.scan_batches(cluster_client, f"{redisstore}:walk:*", 50):
        for name in batch:
            assert node.exists(name)  # the node named holds the key
        found.update(batch)
        nodes.add(id(node))
        assert 0 <= done <= 1

    assert found == names
    assert len(nodes) == 3
    assert keyspace.unlink(cluster_client, sorted(names)) == 300  # keys of many slots
    assert not any(cluster_client.exists(name) for name in names)


async def test_async_scan_walks_every_primary(
    cluster_client: RedisCluster, redisstore: str
) -> None:
    names = {f"{redisstore}:awalk:{i}".encode() for i in range(100)}
    for name in names:
        cluster_client.set(name, b"1", ex=60)
    client = clients.get_async_client()  # closed by the suite after the test
    found = set()
    async for _, batch, _ in keyspace.ascan_batches(client, f"{redisstore}:awalk:*", 20):
        found.update(batch)

    assert found == names
    assert keyspace.unlink(cluster_client, sorted(names)) == 100
