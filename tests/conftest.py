"""Fixtures: a real Redis server for the session, a key prefix of its own for each test.

``REDIS_URL`` makes the suite use a server it did not start (only keys under the tests'
prefixes are touched, then deleted); otherwise the suite starts ``redis-server`` on a free port.
"""

from __future__ import annotations

import inspect
import itertools
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from django_redisstore import clients, keyspace

from . import distributions as dists
from .django_versions import ALLOWED_SKIP, on_ci, skip_below
from .redis_servers import (
    Cluster,
    RedisServer,
    RoundTrips,
    SentinelGroup,
    delete_keys,
    stop_every_server,
)

_prefixes = itertools.count()
CLUSTER_PASSWORD = "cluster-secret"
#: Signals that end a run the way Ctrl-C does, so that the servers are stopped on the way out.
INTERRUPTING = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


def pytest_configure(config: pytest.Config) -> None:
    """Under ``python -m nox`` (``REDISSTORE_TEST_INSTALLED`` set), stop before any test unless
    the package comes from site-packages: a run against the checkout's copy proves nothing
    about the wheel. Then SIGTERM and SIGHUP end the run as Ctrl-C does."""
    if os.environ.get("REDISSTORE_TEST_INSTALLED"):
        problem = dists.import_problem()
        if problem:
            raise pytest.UsageError(problem)
    if threading.current_thread() is threading.main_thread():
        for signum in INTERRUPTING:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _interrupt)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """Whatever the run's end (passed, failed, interrupted), stop every Redis server still
    running and remove its directory (the same runs at interpreter exit, in case)."""
    yield
    stop_every_server()


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


# On CI nothing skips but what the cell's Django cannot do -------------------------------------


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("needs_django")
    if marker is not None:
        skip_below(item, *marker.args)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and on_ci()
        and not item.stash.get(ALLOWED_SKIP, False)
    ):
        _fail_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report: pytest.CollectReport = yield
    if report.skipped and on_ci():  # a whole module skipped (pytest.skip at module level)
        _fail_skip(report)
    return report


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped on CI ({reason}): with CI set, a test may skip only for want of a newer "
        "Django (tests/django_versions.py)"
    )


@pytest.fixture
async def _close_async_clients(redisstore: str) -> AsyncIterator[None]:
    """Close the engine's async clients before the test's event loop ends (no leaked sockets).

    It depends on ``redisstore`` so that it runs before that fixture forgets the clients.
    """
    yield
    await clients.aclose()


@pytest.fixture
def ended() -> Iterator[list[tuple[str | None, str, str]]]:
    """Every ``session_ended`` signal sent during the test: (user_id, session_id, reason)."""
    from django_redisstore.signals import session_ended

    events: list[tuple[str | None, str, str]] = []

    def receiver(sender: Any, *, user_id: Any, session_id: str, reason: str, **_: Any) -> None:
        events.append((user_id, session_id, reason))

    session_ended.connect(receiver, weak=False)
    yield events
    session_ended.disconnect(receiver)


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


# Redis Sentinel (a primary, a replica, 3 Sentinels), started once for the modules that use it --


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    with SentinelGroup() as group:
        yield group


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
