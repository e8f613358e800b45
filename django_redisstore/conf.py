"""The settings of django-redisstore, read from ``django.conf.settings`` at access time.

Every setting is named ``REDISSTORE_*``; the default sits beside each name. Because nothing is
cached here, ``override_settings`` in tests just works.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


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
    def REMEMBER_ME_AGE(self) -> int:
        """Seconds a "Remember me" sign-in lasts (int or timedelta; default 30 days)."""
        return to_seconds("REMEMBER_ME_AGE", self._get("REMEMBER_ME_AGE", 30 * 86400))

    @property
    def IDLE_TIMEOUT(self) -> int | None:
        """Seconds without a request after which a session ends; reads slide it. None: off."""
        value = self._get("IDLE_TIMEOUT", None)
        return None if value is None else to_seconds("IDLE_TIMEOUT", value)

    @property
    def ABSOLUTE_TIMEOUT(self) -> int | None:
        """Seconds after its creation (a sign-in) that a session ends whatever its activity."""
        value = self._get("ABSOLUTE_TIMEOUT", None)
        return None if value is None else to_seconds("ABSOLUTE_TIMEOUT", value)

    @property
    def DEVICE_UPDATE_INTERVAL(self) -> int:
        """Seconds between two writes of a device record's "last seen" by a read-only request."""
        return to_seconds("DEVICE_UPDATE_INTERVAL", self._get("DEVICE_UPDATE_INTERVAL", 300))

    @property
    def TRUSTED_PROXIES(self) -> list[str]:
        """Addresses or networks of the proxies whose ``X-Forwarded-For`` header is believed."""
        value = self._get("TRUSTED_PROXIES", [])
        if isinstance(value, str):
            raise ImproperlyConfigured("REDISSTORE_TRUSTED_PROXIES must be a list, not a string")
        return [str(item) for item in value]

    @property
    def REDACT_KEYS(self) -> tuple[str, ...]:
        """Session keys that ``manage.py sessions inspect`` hides, besides ``_auth_user_hash``."""
        return tuple(self._get("REDACT_KEYS", ()))

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

    @property
    def SENTINELS(self) -> list[str | tuple[str, int]] | None:
        """Sentinels to ask for the primary: ``"host:port"`` strings or ``(host, port)`` pairs."""
        value = self._get("SENTINELS", None)
        return None if value is None else list(value)

    @property
    def SENTINEL_SERVICE(self) -> str | None:
        """The name under which the Sentinels monitor the primary (``sentinel monitor <name>``)."""
        return self._get("SENTINEL_SERVICE", None)  # type: ignore[no-any-return]

    @property
    def SENTINEL_OPTIONS(self) -> dict[str, Any]:
        """Keyword arguments for the connections to the Sentinels themselves (``password``...)."""
        return dict(self._get("SENTINEL_OPTIONS", {}))

    @property
    def CLUSTER_NODES(self) -> list[str | tuple[str, int]] | None:
        """Start nodes (``"host:port"`` or ``(host, port)``) of a Redis Cluster."""
        value = self._get("CLUSTER_NODES", None)
        return None if value is None else list(value)

    @property
    def TLS(self) -> dict[str, Any] | None:
        """TLS files (``ca_file``, ``cert_file``, ``key_file``) and ``check_hostname``: a dict,
        even empty, turns TLS on for every connection; None leaves it to the URL's scheme."""
        value = self._get("TLS", None)
        return None if value is None else dict(value)

    @property
    def WAIT_REPLICAS(self) -> int:
        """After each write, wait until this many replicas have it (``WAIT``); 0: never wait."""
        return int(self._get("WAIT_REPLICAS", 0))

    @property
    def WAIT_TIMEOUT(self) -> float:
        """Seconds a write waits for ``WAIT_REPLICAS`` replicas at most."""
        return float(self._get("WAIT_TIMEOUT", 0.25))

    @property
    def BASE_TEMPLATE(self) -> str:
        """The template that the sessions pages extend (it must have a ``content`` block)."""
        return str(self._get("BASE_TEMPLATE", "django_redisstore/base.html"))

    @property
    def ADMIN(self) -> bool:
        """Whether the registered user admin gets the sessions panel and "Sign out everywhere"."""
        return bool(self._get("ADMIN", True))


def to_seconds(name: str, value: Any) -> int:
    """A duration setting as whole seconds: an int, or a ``timedelta``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(
            f"REDISSTORE_{name} must be a positive number of seconds or a timedelta, not {value!r}"
        )
    return int(value)


conf = Settings()
