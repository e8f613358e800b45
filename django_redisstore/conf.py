"""The settings of django-redisstore, read from ``django.conf.settings`` at access time.

Every setting is named ``REDISSTORE_*``; the default sits beside each name. Because nothing is
cached here, ``override_settings`` in tests just works.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


class Settings:
    """Typed, lazy access to the ``REDISSTORE_*`` settings (see README.rst, "Settings")."""

    def _get(self, name: str, default: Any) -> Any:
        return getattr(settings, "REDISSTORE_" + name, default)

    @property
    def URL(self) -> str | None:
        """``redis://``, ``rediss://`` or ``unix://`` URL of the Redis server."""
        return self._get("URL", None)  # type: ignore[no-any-return]

    @property
    def CACHE_ALIAS(self) -> str | None:
        """Alias of a django-redis cache whose connection pool the sessions share."""
        return self._get("CACHE_ALIAS", None)  # type: ignore[no-any-return]

    @property
    def KEY_PREFIX(self) -> str:
        """Prefix of every Redis key this package writes."""
        return self._get("KEY_PREFIX", "redisstore")  # type: ignore[no-any-return]

    @property
    def CONNECT_TIMEOUT(self) -> float:
        """Seconds to wait for a connection to Redis before giving up."""
        return float(self._get("CONNECT_TIMEOUT", 1.0))

    @property
    def SOCKET_TIMEOUT(self) -> float:
        """Seconds to wait for a reply from Redis before giving up."""
        return float(self._get("SOCKET_TIMEOUT", 1.0))

    @property
    def CONNECTION_OPTIONS(self) -> dict[str, Any]:
        """Extra keyword arguments for redis-py's client (``max_connections``, TLS files...)."""
        return dict(self._get("CONNECTION_OPTIONS", {}))

    @property
    def COMPRESS_MIN_SIZE(self) -> int | None:
        """Serialized sessions of at least this many bytes are stored compressed; None: never."""
        value = self._get("COMPRESS_MIN_SIZE", 256)
        return None if value is None else int(value)

    @property
    def INDEX_HEADROOM(self) -> int:
        """Seconds a user-index entry outlives its session's current expiry (see README)."""
        return int(self._get("INDEX_HEADROOM", 86400))

    @property
    def ON_REDIS_ERROR(self) -> str:
        """``"raise"``: a Redis failure fails the request; ``"anonymous"``: a session that
        cannot be read is served as empty for that request (and never written back)."""
        return self._get("ON_REDIS_ERROR", "raise")  # type: ignore[no-any-return]

    @property
    def RETRIES(self) -> int:
        """Times a command is re-sent after a broken connection (with backoff); never endless."""
        return max(0, int(self._get("RETRIES", 2)))

    @property
    def RETRY_AFTER(self) -> int:
        """Seconds ``RedisUnavailableMiddleware`` tells clients to wait (``Retry-After``)."""
        return int(self._get("RETRY_AFTER", 5))

    @property
    def MAX_SIZE(self) -> int | None:
        """Largest serialized session, in bytes, that a save accepts; None: no limit."""
        value = self._get("MAX_SIZE", 1024 * 1024)
        return None if value is None else int(value)


conf = Settings()
