"""The contract on Sentinel and on a Redis Cluster over TLS.

Each topology speaks TLS only (no plain port), among its own servers too: replication, the
cluster bus and the Sentinels' links. Both start once for this module, with certificates of one
authority that ``redis_servers.make_certificates`` makes; the engine gets them through
``REDISSTORE_TLS`` and checks the servers' names (127.0.0.1 is in their certificates).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import ClusterNode, RedisCluster

from django_redisstore import clients, keyspace

from .conftest import CLUSTER_PASSWORD
from .contract import Contract
from .redis_servers import Cluster, SentinelGroup, delete_keys, tls_client_options
from .test_sentinel import primary_client, use_sentinels
from .test_tls import tls_server  # noqa: F401 (a fixture: where it is skipped, so is this module)

pytestmark = pytest.mark.usefixtures("tls_server")


def tls_setting(certificates: dict[str, Path] | None) -> dict[str, str]:
    assert certificates is not None
    return {key: str(certificates[key]) for key in ("ca_file", "cert_file", "key_file")}


@pytest.fixture(scope="module")
def tls_sentinel_group() -> Iterator[SentinelGroup]:
    with SentinelGroup(tls=True) as group:
        yield group


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[Cluster]:
    with Cluster(password=CLUSTER_PASSWORD, tls=True) as topology:
        yield topology


class TestTLSSentinelContract(Contract):
    @pytest.fixture(autouse=True)
    def _on_tls_sentinel(
        self, settings: Any, redisstore: str, tls_sentinel_group: SentinelGroup
    ) -> Iterator[None]:
        use_sentinels(settings, tls_sentinel_group)
        settings.REDISSTORE_TLS = tls_setting(tls_sentinel_group.certificates)
        self.redis = primary_client(tls_sentinel_group)
        yield  # the suite resets the clients once the async ones are closed
        delete_keys(self.redis, f"{redisstore}:*")
        self.redis.close()


class TestTLSClusterContract(Contract):
    @pytest.fixture(autouse=True)
    def _on_tls_cluster(
        self, settings: Any, redisstore: str, tls_cluster: Cluster
    ) -> Iterator[None]:
        assert tls_cluster.certificates is not None
        settings.REDISSTORE_URL = None
        settings.REDISSTORE_CLUSTER_NODES = tls_cluster.start_nodes
        settings.REDISSTORE_CONNECTION_OPTIONS = {"password": CLUSTER_PASSWORD}
        settings.REDISSTORE_TLS = tls_setting(tls_cluster.certificates)
        clients.reset()
        nodes = [ClusterNode(*clients.parse_address(a)) for a in tls_cluster.start_nodes]
        self.redis = RedisCluster(
            startup_nodes=nodes,
            password=CLUSTER_PASSWORD,
            **tls_client_options(tls_cluster.certificates),  # type: ignore[arg-type]
        )
        yield
        for step in keyspace.scan_batches(self.redis, f"{redisstore}:*"):
            keyspace.unlink(self.redis, step.names)
        self.redis.close()
