"""Fixtures: a real Redis server for the session, a key prefix of its own for each test.

``REDIS_URL`` makes the suite use a server it did not start (only keys under the tests'
prefixes are touched, then deleted); otherwise the suite starts ``redis-server`` on a free port.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from django_redisstore import clients, keyspace

from . import distributions as dists
from .redis_servers import Cluster, RedisServer, RoundTrips, delete_keys

_prefixes = itertools.count()
CLUSTER_PASSWORD = "cluster-secret"


def pytest_configure(config: pytest.Config) -> None:
    """Under ``python -m nox`` (``REDISSTORE_TEST_INSTALLED`` set), stop before any test unless
    the package comes from site-packages: a run against the checkout's copy proves nothing
    about the wheel."""
    if os.environ.get("REDISSTORE_TEST_INSTALLED"):
        problem = dists.import_problem()
        if problem:
            raise pytest.UsageError(problem)


@pytest.fixture(scope="session")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> dists.Distributions:
    """The wheel and sdist under test (see tests/distributions.py), built once per run."""
    return dists.built(tmp_path_factory.mktemp("distributions"))


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="module")
def own_server() -> Iterator[RedisServer]:
    """A Redis server of the test module's own, for tests that reconfigure or flush it."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def redisstore(settings: Any, redis_server_url: str) -> Iterator[str]:
    """Point the engine at the test server, under a key prefix that no other test uses."""
    prefix = f"rstest{os.getpid()}-{next(_prefixes)}"
    settings.REDISSTORE_URL = redis_server_url
    settings.REDISSTORE_KEY_PREFIX = prefix
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    try:
        delete_keys(client, f"{prefix}:*")
    finally:
        client.close()
        clients.reset()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Async tests close the engine's async clients before their event loop ends. Only they get
    # the (async) fixture: a sync test may run an event loop of its own (Playwright does). It
    # comes first, so that it ends last: the test's other fixtures may use the client as they end.
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.insert(0, "_close_async_clients")  # type: ignore[attr-defined]


@pytest.fixture
async def _close_async_clients(redisstore: str) -> AsyncIterator[None]:
    """Close the engine's async clients before the test's event loop ends (no leaked sockets).

    It depends on ``redisstore`` so that it runs before that fixture forgets the clients.
    """
    yield
    await clients.aclose()


@pytest.fixture
def round_trips() -> Iterator[RoundTrips]:
    """Count every packet that a redis-py connection (sync or async) sends from now on."""
    with RoundTrips().counting() as counter:
        yield counter


# Redis Cluster (3 primaries, 1 replica each), started once for the modules that use it --------


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with Cluster(password=CLUSTER_PASSWORD) as topology:
        yield topology


@pytest.fixture
def cluster_client(cluster: Cluster) -> Iterator[RedisCluster]:
    nodes = [ClusterNode(*clients.parse_address(a)) for a in cluster.start_nodes]
    client = RedisCluster(startup_nodes=nodes, password=CLUSTER_PASSWORD)
    yield client
    client.close()


@pytest.fixture
def on_cluster(
    settings: Any, redisstore: str, cluster: Cluster, cluster_client: RedisCluster
) -> Iterator[None]:
    """Point the engine at the cluster (``REDISSTORE_CLUSTER_NODES``); afterwards, check that no
    command spanned two hash slots, and delete the test's keys."""
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_CLUSTER_NODES = cluster.start_nodes
    settings.REDISSTORE_CONNECTION_OPTIONS = {"password": CLUSTER_PASSWORD}
    clients.reset()
    crossslot_before = cluster.error_count("CROSSSLOT")
    yield  # the suite resets the clients once the async ones are closed
    assert cluster.error_count("CROSSSLOT") == crossslot_before, "a command spanned two hash slots"
    for step in keyspace.scan_batches(cluster_client, f"{redisstore}:*"):
        keyspace.unlink(cluster_client, step.names)
