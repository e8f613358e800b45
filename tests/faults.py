"""Helpers shared by the fault tests: a proxy in front of the suite's Redis, and the settings that
point the engine through it with short timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from django_redisstore import connection

from .tcp_proxy import TcpProxy

#: Short timeouts keep the fault tests quick; the engine's defaults are 1 s each.
TIMEOUT = 0.3


def server_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


@contextmanager
def proxied(settings: Any, url: str) -> Iterator[TcpProxy]:
    """Route the engine to the Redis at ``url`` through a ``TcpProxy``, with short timeouts."""
    host, port = server_address(url)
    db = urlsplit(url).path or "/0"
    with TcpProxy(port, host) as proxy:
        settings.REDISSTORE_URL = f"redis://127.0.0.1:{proxy.port}{db}"
        settings.REDISSTORE_CONNECT_TIMEOUT = TIMEOUT
        settings.REDISSTORE_SOCKET_TIMEOUT = TIMEOUT
        yield proxy  # the suite's autouse fixture resets the engine's clients afterwards


@pytest.fixture
async def close_async_clients() -> AsyncIterator[None]:
    """Close the engine's async clients of this test's event loop before the loop closes.

    ``connection.reset()`` only forgets them; left open, their sockets would be reported as
    unclosed (an error under ``filterwarnings = error``) in whichever test runs next.
    """
    yield
    clients = connection._async_clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()
