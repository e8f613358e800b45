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
import redis.asyncio.connection
import redis.connection

from django_redisstore import connection

from .redis_servers import RedisServer

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


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
        for batch in _batches(client.scan_iter(f"{prefix}:*", count=1000), 500):
            client.unlink(*batch)
    finally:
        client.close()
        connection.reset()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Async tests close the engine's async clients before their event loop ends. Only they get
    # the (async) fixture: a sync test may run an event loop of its own (Playwright does).
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("_close_async_clients")  # type: ignore[attr-defined]


@pytest.fixture
async def _close_async_clients(redisstore: str) -> AsyncIterator[None]:
    """Close the engine's async clients before the test's event loop ends (no leaked sockets).

    It depends on ``redisstore`` so that it runs before that fixture forgets the clients.
    """
    yield
    await connection.aclose()


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class RoundTrips:
    """Counts the packets the engine writes to Redis: its round trips, as the network sees them.

    A pipeline is one packet, so it counts once however many commands it carries.
    """

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Count every packet that a redis-py connection (sync or async) sends from now on."""
    counter = RoundTrips()
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += 1
        sync_send(self, command, check_health)

    async def asend(self: Any, command: Any, check_health: bool = True) -> None:
        counter.count += 1
        await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", asend)
    return counter
