"""The settings of django-redisstore: one frozen, validated snapshot, rebuilt after a change.

Private: no stable API (the settings themselves are documented in docs/settings.rst).

Every setting is named ``REDISSTORE_*``; ``DEFAULTS`` states each default once. ``get()`` returns
the current ``Snapshot``: every ``REDISSTORE_*`` setting parsed and validated, plus the few Django
settings a request's read and save consult. It is built on first use and dropped by the one
``setting_changed`` receiver below (``override_settings`` and pytest-django's ``settings``
fixture send it), so tests that change settings just work, and a request pays a cache hit
instead of a dozen settings look-ups (a ``REDISSTORE_*`` setting left at its default costs about
2.5 us through Django's ``AttributeError``). A setting that cannot work raises
``ImproperlyConfigured`` naming it when the snapshot is built.

``conf.X`` reads ``X`` of the current snapshot. ``read(name)`` parses one setting alone: the
system checks use it, so that each bad setting is reported under its own check id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

#: Every ``REDISSTORE_*`` setting (without the prefix) and its default.
DEFAULTS: dict[str, Any] = {
    "URL": None,
    "CACHE_ALIAS": None,
    "KEY_PREFIX": "redisstore",
    "CONNECT_TIMEOUT": 1.0,
    "SOCKET_TIMEOUT": 1.0,
    "CONNECTION_OPTIONS": {},
    "COMPRESS_MIN_SIZE": 256,
    "INDEX_HEADROOM": 86400,
    "REMEMBER_ME_AGE": 30 * 86400,
    "IDLE_TIMEOUT": None,
    "ABSOLUTE_TIMEOUT": None,
    "DEVICE_UPDATE_INTERVAL": 300,
    "TRUSTED_PROXIES": [],
    "REDACT_KEYS": (),
    "ON_REDIS_ERROR": "raise",
    "RETRIES": 2,
    "RETRY_AFTER": 5,
    "MAX_SIZE": 1024 * 1024,
    "SAVE_DEADLINE": 5.0,
    "SAVE_BUDGET": 16 * 1024 * 1024,
    "SENTINELS": None,
    "SENTINEL_SERVICE": None,
    "SENTINEL_OPTIONS": {},
    "CLUSTER_NODES": None,
    "TLS": None,
    "WAIT_REPLICAS": 0,
    "WAIT_TIMEOUT": 0.25,
    "BASE_TEMPLATE": "django_redisstore/base.html",
    "ADMIN": True,
    "MAX_SESSIONS_PER_USER": None,
    "MAX_SESSIONS_POLICY": "end_oldest",
}

#: The values of ``REDISSTORE_MAX_SESSIONS_POLICY``.
POLICIES = ("end_oldest", "refuse")


def raw(name: str) -> Any:
    """``REDISSTORE_<name>`` as set, or its default: unparsed (the checks inspect it as is)."""
    return getattr(settings, "REDISSTORE_" + name, DEFAULTS[name])


def to_seconds(name: str, value: Any) -> int:
    """A duration setting as whole seconds: an int, or a ``timedelta``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(
            f"REDISSTORE_{name} must be a positive number of seconds or a timedelta, not {value!r}"
        )
    return int(value)


def _optional(parse: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else parse(name, value)


def _proxies(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ImproperlyConfigured("REDISSTORE_TRUSTED_PROXIES must be a list, not a string")
    return tuple(str(item) for item in value)


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))  # read-only: the snapshot is shared by every request


def _addresses(name: str, value: Any) -> tuple[Any, ...]:
    return tuple(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"REDISSTORE_{name} must be None or an int of at least 1, not {value!r}"
        )
    return value


def _policy(name: str, value: Any) -> str:
    if value not in POLICIES:
        raise ImproperlyConfigured(f"REDISSTORE_{name} must be one of {POLICIES}, not {value!r}")
    return str(value)


def _positive(name: str, value: float) -> Any:
    if value <= 0:
        raise ValueError(f"REDISSTORE_{name} must be above 0")
    return value


def _same(name: str, value: Any) -> Any:
    return value


#: How each setting is parsed (and validated); a setting not listed here is taken as it is.
_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "CONNECT_TIMEOUT": lambda name, value: float(value),
    "SOCKET_TIMEOUT": lambda name, value: float(value),
    "CONNECTION_OPTIONS": _mapping,
    "COMPRESS_MIN_SIZE": _optional(lambda name, value: int(value)),
    "INDEX_HEADROOM": lambda name, value: int(value),
    "REMEMBER_ME_AGE": to_seconds,
    "IDLE_TIMEOUT": _optional(to_seconds),
    "ABSOLUTE_TIMEOUT": _optional(to_seconds),
    "DEVICE_UPDATE_INTERVAL": to_seconds,
    "TRUSTED_PROXIES": _proxies,
    "REDACT_KEYS": lambda name, value: tuple(value),
    "RETRIES": lambda name, value: max(0, int(value)),
    "RETRY_AFTER": lambda name, value: int(value),
    "MAX_SIZE": _optional(lambda name, value: int(value)),
    "SAVE_DEADLINE": lambda name, value: _positive(name, float(value)),
    "SAVE_BUDGET": lambda name, value: _positive(name, int(value)),
    "SENTINELS": _optional(_addresses),
    "SENTINEL_OPTIONS": _mapping,
    "CLUSTER_NODES": _optional(_addresses),
    "TLS": _optional(_mapping),
    "WAIT_REPLICAS": lambda name, value: int(value),
    "WAIT_TIMEOUT": lambda name, value: float(value),
    "BASE_TEMPLATE": lambda name, value: str(value),
    "ADMIN": lambda name, value: bool(value),
    "MAX_SESSIONS_PER_USER": _optional(_count),
    "MAX_SESSIONS_POLICY": _policy,
}


def read(name: str) -> Any:
    """``REDISSTORE_<name>`` parsed, read now (not from the snapshot); raises
    ``ImproperlyConfigured`` for a duration or proxy list that cannot work, and what the
    conversion raises (``ValueError``, ``TypeError``) for a number that is not one."""
    return _PARSERS.get(name, _same)(name, raw(name))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The settings as of the last change: see docs/settings.rst for each one."""

    URL: str | None
    CACHE_ALIAS: str | None
    KEY_PREFIX: str
    CONNECT_TIMEOUT: float
    SOCKET_TIMEOUT: float
    CONNECTION_OPTIONS: Mapping[str, Any]
    COMPRESS_MIN_SIZE: int | None
    INDEX_HEADROOM: int
    REMEMBER_ME_AGE: int
    IDLE_TIMEOUT: int | None
    ABSOLUTE_TIMEOUT: int | None
    DEVICE_UPDATE_INTERVAL: int
    TRUSTED_PROXIES: tuple[str, ...]
    REDACT_KEYS: tuple[str, ...]
    ON_REDIS_ERROR: str
    RETRIES: int
    RETRY_AFTER: int
    MAX_SIZE: int | None
    #: The bounds of one save's conflict retries: seconds, and bytes through Redis.
    SAVE_DEADLINE: float
    SAVE_BUDGET: int
    SENTINELS: tuple[str | tuple[str, int], ...] | None
    SENTINEL_SERVICE: str | None
    SENTINEL_OPTIONS: Mapping[str, Any]
    CLUSTER_NODES: tuple[str | tuple[str, int], ...] | None
    TLS: Mapping[str, Any] | None
    WAIT_REPLICAS: int
    WAIT_TIMEOUT: float
    #: The template that the sessions pages extend (it must have a ``content`` block).
    BASE_TEMPLATE: str
    #: Whether the registered user admin gets the sessions panel and "Sign out everywhere".
    ADMIN: bool
    #: At most this many live sessions per user (None: no limit), and what a sign-in beyond it
    #: does: ``"end_oldest"`` or ``"refuse"``.
    MAX_SESSIONS_PER_USER: int | None
    MAX_SESSIONS_POLICY: str
    # Django's settings that the engine consults on every request.
    secret_key: str
    #: ``SECRET_KEY`` first, then ``SECRET_KEY_FALLBACKS``.
    secrets: tuple[str, ...]
    save_every_request: bool
    expire_at_browser_close: bool
    cookie_age: int
    serializer: Any  # the SESSION_SERIALIZER class
    # Derived once.
    #: Reads slide the TTL: ``SESSION_SAVE_EVERY_REQUEST`` or ``REDISSTORE_IDLE_TIMEOUT``.
    slides: bool
    #: ``<KEY_PREFIX>:s:``, the start of every session's key.
    session_prefix: str
    #: The settings that pick a Redis client, as a hashable key of the client cache.
    client_key: tuple[Any, ...]


def _client_key(values: dict[str, Any]) -> tuple[Any, ...]:
    names = (
        "URL",
        "CACHE_ALIAS",
        "SENTINELS",
        "SENTINEL_SERVICE",
        "SENTINEL_OPTIONS",
        "CLUSTER_NODES",
        "TLS",
        "CONNECT_TIMEOUT",
        "SOCKET_TIMEOUT",
        "RETRIES",
        "CONNECTION_OPTIONS",
    )
    return tuple(
        repr(sorted(v.items())) if isinstance(v, Mapping) else repr(v)
        for v in (values[name] for name in names)
    )


def _validated(name: str) -> Any:
    try:
        return read(name)
    except (TypeError, ValueError) as e:
        raise ImproperlyConfigured(f"REDISSTORE_{name} {raw(name)!r} is not usable: {e}") from e


def _build() -> Snapshot:
    values = {name: _validated(name) for name in DEFAULTS}
    secret_key = settings.SECRET_KEY
    return Snapshot(
        **values,
        secret_key=secret_key,
        secrets=(secret_key, *getattr(settings, "SECRET_KEY_FALLBACKS", ())),
        save_every_request=bool(settings.SESSION_SAVE_EVERY_REQUEST),
        expire_at_browser_close=bool(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE),
        cookie_age=int(settings.SESSION_COOKIE_AGE),
        serializer=import_string(settings.SESSION_SERIALIZER),
        slides=bool(settings.SESSION_SAVE_EVERY_REQUEST) or values["IDLE_TIMEOUT"] is not None,
        session_prefix=f"{values['KEY_PREFIX']}:s:",
        client_key=_client_key(values),
    )


@lru_cache(maxsize=1)
def get() -> Snapshot:
    """The current settings (built now if a setting changed since the last call).

    An ``lru_cache`` of one entry: a hit is a C call, about as cheap as reading a global.
    """
    return _build()


def forget(**kwargs: Any) -> None:
    """Drop the snapshot: the next ``get()`` reads the settings again."""
    get.cache_clear()


setting_changed.connect(forget, dispatch_uid="django_redisstore.conf")


class _Current:
    """``conf.X``: attribute ``X`` of the current snapshot."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(get(), name)


if TYPE_CHECKING:
    conf: Snapshot
else:
    conf = _Current()
