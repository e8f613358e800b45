"""Redis clients (process-wide, made on first use) and the two drivers that send ``Call`` batches.

The engine builds every Redis interaction as a list of ``Call`` objects (see ``scripts``); this
module is the only place that knows whether they travel through ``redis.Redis`` or
``redis.asyncio.Redis``. A batch of one call is sent as it is, a longer batch as one
non-transactional pipeline: one round trip either way.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .conf import conf
from .exceptions import ConnectionInterrupted, RedisStoreError
from .scripts import Call

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], redis.asyncio.Redis]
] = weakref.WeakKeyDictionary()

# Connection-pool arguments that the async client takes under the same name.
_SHARED_KWARGS = (
    "host",
    "port",
    "path",
    "db",
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "client_name",
    "health_check_interval",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_check_hostname",
)


#: The settings that pick a client, as last read; None after a setting changed. Reading them
#: costs five settings look-ups (10 us, most of them for settings left at their default), which
#: every Redis call would otherwise pay; ``setting_changed`` (override_settings) clears it.
_current_key: tuple[Any, ...] | None = None


def _config_key() -> tuple[Any, ...]:
    global _current_key
    key = _current_key
    if key is None:
        key = _current_key = (
            conf.URL,
            conf.CACHE_ALIAS,
            conf.CONNECT_TIMEOUT,
            conf.SOCKET_TIMEOUT,
            repr(sorted(conf.CONNECTION_OPTIONS.items())),
        )
    return key


def _forget_config(**kwargs: Any) -> None:
    global _current_key
    _current_key = None


setting_changed.connect(_forget_config, dispatch_uid="django_redisstore.connection")


def _client_options() -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": conf.CONNECT_TIMEOUT,
        "socket_timeout": conf.SOCKET_TIMEOUT,
        "health_check_interval": 30,
    }
    options.update(conf.CONNECTION_OPTIONS)
    return options


def _retry(module: Any) -> Any:
    # Transient connection errors are retried twice with a short backoff, never endlessly.
    return module.retry.Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)


def _cache_client(alias: str) -> redis.Redis:
    from django.core.cache import caches

    try:
        cache = caches[alias]
    except Exception as e:
        raise ImproperlyConfigured(f"REDISSTORE_CACHE_ALIAS names no cache {alias!r}") from e
    get_client = getattr(getattr(cache, "client", None), "get_client", None)
    if get_client is None:
        raise ImproperlyConfigured(
            f"REDISSTORE_CACHE_ALIAS {alias!r} is not a django-redis cache "
            "(its BACKEND must be django_redis.cache.RedisCache)"
        )
    return get_client(write=True)  # type: ignore[no-any-return]


def _new_client() -> redis.Redis:
    if conf.URL:
        return redis.Redis.from_url(conf.URL, retry=_retry(redis), **_client_options())
    if conf.CACHE_ALIAS:
        return _cache_client(conf.CACHE_ALIAS)
    raise ImproperlyConfigured(
        "django_redisstore needs a Redis connection: set REDISSTORE_URL or REDISSTORE_CACHE_ALIAS"
    )


def _new_async_client() -> redis.asyncio.Redis:
    if conf.URL:
        return redis.asyncio.Redis.from_url(
            conf.URL, retry=_retry(redis.asyncio), **_client_options()
        )
    # Borrow the address and options of the sync client (django-redis has no async pool).
    pool = get_client().connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _SHARED_KWARGS}
    sync_class = pool.connection_class.__name__
    connection_class = getattr(redis.asyncio.connection, sync_class, None)
    if connection_class is None:
        raise ImproperlyConfigured(
            f"the async API cannot reuse a {sync_class} connection from REDISSTORE_CACHE_ALIAS; "
            "set REDISSTORE_URL instead"
        )
    async_pool = redis.asyncio.ConnectionPool(connection_class=connection_class, **kwargs)
    return redis.asyncio.Redis(connection_pool=async_pool, retry=_retry(redis.asyncio))


def get_client() -> redis.Redis:
    """The process-wide sync client for the current settings."""
    key = _config_key()
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = _new_client()
    return client


def get_async_client() -> redis.asyncio.Redis:
    """The async client for the current settings and the running event loop."""
    loop = asyncio.get_running_loop()
    key = _config_key()
    per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = _new_async_client()
    return client


def reset() -> None:
    """Forget every client (tests call this when they point the settings at another server)."""
    with _lock:
        for client in _clients.values():
            client.connection_pool.disconnect()
        _clients.clear()
    _async_clients.clear()
    _forget_config()


def describe(client: redis.Redis | redis.asyncio.Redis) -> str:
    """Where ``client`` connects to, for error messages: never a password."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _translate(client: Any, error: RedisError) -> RedisStoreError:
    if isinstance(error, (redis.ConnectionError, RedisTimeoutError)):
        kind = "timed out" if isinstance(error, RedisTimeoutError) else "is unreachable"
        return ConnectionInterrupted(f"Redis at {describe(client)} {kind}: {error}")
    return RedisStoreError(f"Redis at {describe(client)} answered with an error: {error}")


def _check(client: Any, results: list[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, RedisError):
            raise _translate(client, result) from result
    return results


def execute(client: redis.Redis, calls: Sequence[Call]) -> list[Any]:
    """Send ``calls`` in one round trip and return their replies, in order."""
    try:
        if len(calls) == 1:
            results = [_run_one(client, calls[0])]
        else:
            pipe = client.pipeline(transaction=False)
            for call in calls:
                pipe.execute_command(*call.args)
            results = pipe.execute(raise_on_error=False)
            for i, result in enumerate(results):
                if isinstance(result, NoScriptError):
                    results[i] = client.execute_command(*calls[i].as_eval())
    except RedisError as e:
        raise _translate(client, e) from e
    return _check(client, results)


def _run_one(client: redis.Redis, call: Call) -> Any:
    try:
        return client.execute_command(*call.args)
    except NoScriptError:
        return client.execute_command(*call.as_eval())


async def aexecute(client: redis.asyncio.Redis, calls: Sequence[Call]) -> list[Any]:
    """The async twin of ``execute``."""
    try:
        if len(calls) == 1:
            call = calls[0]
            try:
                results = [await client.execute_command(*call.args)]
            except NoScriptError:
                results = [await client.execute_command(*call.as_eval())]
        else:
            pipe = client.pipeline(transaction=False)
            for call in calls:
                pipe.execute_command(*call.args)
            results = await pipe.execute(raise_on_error=False)
            for i, result in enumerate(results):
                if isinstance(result, NoScriptError):
                    results[i] = await client.execute_command(*calls[i].as_eval())
    except RedisError as e:
        raise _translate(client, e) from e
    return _check(client, results)
