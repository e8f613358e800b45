"""Helpers shared by the fault tests: a proxy in front of the suite's Redis, and the settings that
point the engine through it with short timeouts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .tcp_proxy import TcpProxy

#: Short timeouts keep the fault tests quick; the engine's defaults are 1 s each.
TIMEOUT = 0.3
#: The 503 page's middleware, and one behind it that reads the session on every request.
MIDDLEWARE_503 = [
    "django_redisstore.unavailable.RedisUnavailableMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


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
