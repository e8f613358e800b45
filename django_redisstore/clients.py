"""Redis clients: one per topology and settings, made on first use, and what their failures mean.

Private: no stable API.

The only module that knows how a client is built for the topology the settings name: one server
(``REDISSTORE_URL`` or ``REDISSTORE_CACHE_ALIAS``), a primary found through Sentinel
(``REDISSTORE_SENTINELS``), or a Redis Cluster (``REDISSTORE_CLUSTER_NODES``), with the TLS,
timeout and retry options of each. The clients are redis-py's own (``Sentinel``'s
``master_for``, ``RedisCluster``): routing by hash slot, redirections and failover are theirs.

The sync client is process-wide; async clients belong to one event loop each (``aclose`` before
the loop ends). ``describe`` names where a client connects, never with its password, and
``translate_error`` turns what redis-py raises into the engine's exceptions with that address.
Sending calls is ``flows``' business; walking the keyspace, ``keyspace``'s.
"""

from __future__ import annotations

import asyncio
import copy
import re
import threading
import weakref
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from .conf import conf
from .conf import forget as forget_settings
from .conf import get as get_settings
from .exceptions import ConnectionInterrupted, RedisStoreError, WrongType

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}
_Clients = dict[tuple[Any, ...], Any]
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clients] = (
    weakref.WeakKeyDictionary()
)

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


#: ``REDISSTORE_TLS`` keys, and the names redis-py gives them.
TLS_OPTIONS = {
    "ca_file": "ssl_ca_certs",
    "cert_file": "ssl_certfile",
    "key_file": "ssl_keyfile",
    "check_hostname": "ssl_check_hostname",
}

#: What redis-py raises: RedisClusterException is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)


def topology() -> str:
    """``"cluster"``, ``"sentinel"`` or ``"single"``, from the settings."""
    if conf.CLUSTER_NODES:
        return "cluster"
    if conf.SENTINELS:
        return "sentinel"
    return "single"


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a Redis Cluster client (sync or async)."""
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def parse_address(address: Any) -> tuple[str, int]:
    """``"host:port"``, ``"[v6addr]:port"`` or ``(host, port)`` as ``(host, port)``.

    Raises ``ValueError`` on anything else (the system checks report it).
    """
    if isinstance(address, (tuple, list)) and len(address) == 2:
        host, port = address
    elif isinstance(address, str):
        host, sep, port = address.rpartition(":")
        if not sep:
            raise ValueError(f"{address!r} is not host:port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
    else:
        raise ValueError(f"{address!r} is neither 'host:port' nor a (host, port) pair")
    port = int(port)
    if not isinstance(host, str) or not host or not 0 < port < 65536:
        raise ValueError(f"{address!r} is not a valid host and port")
    return host, port


# redis-py before 6 recurses without end (RecursionError) when a server drops a connection right
# after accepting it (a TLS server refusing the client's certificate): the health check's PING
# reconnects, and the reconnection's first command checks health again. Check health on 6+ only.
REDIS_6 = int(redis.__version__.split(".")[0]) >= 6
_HEALTH_CHECKS = REDIS_6


def _config_key() -> tuple[Any, ...]:
    # The settings that pick a client (the snapshot computes the key once per settings change).
    return get_settings().client_key


def _tls_options() -> dict[str, Any]:
    """``REDISSTORE_TLS`` under redis-py's names (without ``ssl``: callers add it if needed).

    Hostnames are checked whenever TLS is on (``REDISSTORE_TLS`` or a ``rediss://`` URL) unless
    ``check_hostname`` is False: redis-py 5 does not check them by default, 6 and later do.
    """
    if conf.TLS is None and not (conf.URL or "").startswith("rediss://"):
        return {}
    options: dict[str, Any] = {"ssl_check_hostname": True}
    for key, value in (conf.TLS or {}).items():
        if key not in TLS_OPTIONS:
            raise ImproperlyConfigured(
                f"REDISSTORE_TLS has an unknown key {key!r} (known: {', '.join(TLS_OPTIONS)})"
            )
        options[TLS_OPTIONS[key]] = value
    return options


def _client_options() -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": conf.CONNECT_TIMEOUT,
        "socket_timeout": conf.SOCKET_TIMEOUT,
        "health_check_interval": 30 if _HEALTH_CHECKS else 0,
    }
    if not REDIS_6:  # redis-py 5 retries a command only on these errors, whatever ``retry`` says
        options["retry_on_error"] = [redis.ConnectionError]
    options.update(_tls_options())
    options.update(conf.CONNECTION_OPTIONS)
    return options


def _retry(module: Any) -> Any:
    # A broken connection (Redis restarted, a proxy cut it) is re-dialled REDISSTORE_RETRIES
    # times with a short backoff, never endlessly. Timeouts are not retried: a server that
    # stalled past SOCKET_TIMEOUT will not answer 20 ms later, and each retry would add a whole
    # timeout to the time the request hangs. Not for a client borrowed through
    # REDISSTORE_CACHE_ALIAS: redis-py keeps retries on the pool's connections, which are the
    # cache's, so the cache's settings govern them (for the cache and the sessions alike).
    return module.retry.Retry(
        ExponentialBackoff(cap=0.2, base=0.02),
        conf.RETRIES,
        supported_errors=(redis.ConnectionError,),
    )


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


def _url() -> str:
    url = conf.URL
    assert url is not None
    if conf.TLS is not None and not url.startswith("rediss://"):
        raise ImproperlyConfigured("REDISSTORE_TLS is set but REDISSTORE_URL is not rediss://")
    return url


def _cluster_options(module: Any, client_module: Any) -> dict[str, Any]:
    options = _client_options()
    options.pop("health_check_interval")  # the sync RedisCluster does not take it
    options.pop("retry_on_error", None)  # the cluster clients retry by themselves
    if conf.TLS is not None:
        options["ssl"] = True
    nodes = [module.ClusterNode(*parse_address(a)) for a in conf.CLUSTER_NODES or ()]
    return {"startup_nodes": nodes, "retry": _retry(client_module), **options}


def _sentinel(module: Any, client_module: Any) -> Any:
    """A ``Sentinel`` manager: TLS and timeouts apply to the Sentinels too, unless
    ``REDISSTORE_SENTINEL_OPTIONS`` says otherwise (``{"ssl": False}``, a password...)."""
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": conf.CONNECT_TIMEOUT,
        "socket_timeout": conf.SOCKET_TIMEOUT,
        "retry": _retry(client_module),  # redis-py's default backs off for seconds
    }
    if conf.TLS is not None:
        sentinel_options.update(ssl=True, **_tls_options())
    sentinel_options.update(conf.SENTINEL_OPTIONS)
    options = _client_options()
    if conf.TLS is not None:
        options["ssl"] = True
    addresses = [parse_address(a) for a in conf.SENTINELS or ()]
    return module.Sentinel(addresses, sentinel_kwargs=sentinel_options, **options)


def _service() -> str:
    if not conf.SENTINEL_SERVICE:
        raise ImproperlyConfigured(
            "REDISSTORE_SENTINELS is set without REDISSTORE_SENTINEL_SERVICE"
        )
    return conf.SENTINEL_SERVICE


def _new_client() -> Any:
    kind = topology()
    if kind == "cluster":
        return redis.cluster.RedisCluster(**_cluster_options(redis.cluster, redis))
    if kind == "sentinel":
        return _sentinel(redis.sentinel, redis).master_for(_service(), retry=_retry(redis))
    if conf.URL:
        return redis.Redis.from_url(_url(), retry=_retry(redis), **_client_options())
    if conf.CACHE_ALIAS:
        return _cache_client(conf.CACHE_ALIAS)
    raise ImproperlyConfigured(
        "django_redisstore needs a Redis connection: set REDISSTORE_URL, REDISSTORE_CACHE_ALIAS, "
        "REDISSTORE_SENTINELS or REDISSTORE_CLUSTER_NODES"
    )


def _new_async_client() -> Any:
    kind = topology()
    if kind == "cluster":
        return redis.asyncio.cluster.RedisCluster(
            **_cluster_options(redis.asyncio.cluster, redis.asyncio)
        )
    if kind == "sentinel":
        sentinel = _sentinel(redis.asyncio.sentinel, redis.asyncio)
        return sentinel.master_for(_service(), retry=_retry(redis.asyncio))
    if conf.URL:
        return redis.asyncio.Redis.from_url(
            _url(), retry=_retry(redis.asyncio), **_client_options()
        )
    # Borrow the address and options of the sync client (django-redis has no async pool), and
    # its retries: REDISSTORE_RETRIES does not apply to the cache's connections (see _retry).
    pool = get_client().connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _SHARED_KWARGS}
    sync_class = pool.connection_class.__name__
    connection_class = getattr(redis.asyncio.connection, sync_class, None)
    if connection_class is None:
        raise ImproperlyConfigured(
            f"the async API cannot reuse a {sync_class} connection from REDISSTORE_CACHE_ALIAS; "
            "set REDISSTORE_URL instead"
        )
    borrowed_retry = pool.connection_kwargs.get("retry")
    if borrowed_retry is not None:  # the cache's retries, as its sync connections have them
        kwargs["retry"] = redis.asyncio.retry.Retry(
            copy.deepcopy(borrowed_retry._backoff),  # a backoff may keep state
            borrowed_retry._retries,
            borrowed_retry._supported_errors,
        )
    async_pool = redis.asyncio.ConnectionPool(connection_class=connection_class, **kwargs)
    return redis.asyncio.Redis(connection_pool=async_pool)


def get_client() -> Any:
    """The process-wide sync client for the current settings: a ``redis.Redis`` (one server,
    or the primary of a Sentinel service) or a ``redis.cluster.RedisCluster``."""
    key = _config_key()
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                try:
                    client = _clients[key] = _new_client()
                except REDIS_ERRORS as e:  # RedisCluster connects as it is made
                    raise translate_error(None, e) from e
    return client


def get_async_client() -> Any:
    """The async client for the current settings and the running event loop."""
    loop = asyncio.get_running_loop()
    key = _config_key()
    per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = _new_async_client()
    return client


_SENTINEL_POOLS = (
    redis.sentinel.SentinelConnectionPool,
    redis.asyncio.sentinel.SentinelConnectionPool,
)


def reset() -> None:
    """Forget every client (tests call this when they point the settings at another server)."""
    with _lock:
        for client in _clients.values():
            if isinstance(client, redis.cluster.RedisCluster):
                client.close()
            else:
                client.connection_pool.disconnect()
            for sentinel in _sentinels_of(client):
                sentinel.close()
        _clients.clear()
    _async_clients.clear()
    forget_settings()


async def aclose() -> None:
    """Close and forget the async clients of the running event loop.

    Async clients belong to one event loop and cannot outlive it: call this before a loop ends
    (ASGI lifespan shutdown, the end of ``asyncio.run``), or its sockets are left for the
    garbage collector to find open.
    """
    clients = _async_clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()
        pool = getattr(client, "connection_pool", None)  # a cluster client has none
        if pool is not None:
            await pool.disconnect()  # a pool the client was given is not closed with it
        for sentinel in _sentinels_of(client):
            await sentinel.aclose()


def _sentinels_of(client: Any) -> list[Any]:
    """The clients of the Sentinels behind ``client`` (they hold connections of their own)."""
    pool = getattr(client, "connection_pool", None)
    return list(pool.sentinel_manager.sentinels) if isinstance(pool, _SENTINEL_POOLS) else []


def describe(client: Any) -> str:
    """Where ``client`` connects to, for error messages: never a password.

    ``None`` describes the cluster that the settings name (before its client exists).
    """
    if client is None:
        return "Redis Cluster (start nodes " + ", ".join(map(str, conf.CLUSTER_NODES or ())) + ")"
    if is_cluster(client):
        return "Redis Cluster (start nodes " + ", ".join(client.nodes_manager.startup_nodes) + ")"
    pool = client.connection_pool
    if isinstance(pool, _SENTINEL_POOLS):
        primary = pool.master_address
        sentinels = ", ".join(
            "{host}:{port}".format(**s.connection_pool.connection_kwargs)
            for s in pool.sentinel_manager.sentinels
        )
        where = "{}:{}".format(*primary) if primary else "not known yet"
        return f"Sentinel service {pool.service_name!r} (primary {where}; sentinels {sentinels})"
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


#: Answers meaning "this server cannot take the command now" (full under noeviction, a replica
#: after a failover, a cluster re-sharding or a slot without a primary for a moment): an outage
#: for the request, like a dropped link.
_UNAVAILABLE = (
    OutOfMemoryError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
_UNREACHABLE = (redis.ConnectionError, RedisTimeoutError)

#: The codes of ``_UNAVAILABLE``'s errors inside a script's error message (Redis 6.2).
_SCRIPT_UNAVAILABLE = re.compile(r"^Error running script.*: -(OOM|READONLY|CLUSTERDOWN|TRYAGAIN) ")


def _unreachable(error: Exception) -> bool:
    if isinstance(error, _UNREACHABLE):
        return True
    # RedisCluster reports "no start node answers" as a bare RedisClusterException.
    return isinstance(error, RedisClusterException) and isinstance(error.__cause__, _UNREACHABLE)


def translate_error(client: Any, error: Exception) -> RedisStoreError:
    """What redis-py raised, as the engine's exception naming ``describe(client)``.

    The one place that reads redis-py's errors: every Redis call of the package goes through
    ``flows.execute``/``aexecute`` or ``keyspace`` (scans, packed pipelines), which raise
    what this returns. Redis reports a wrong type only as text (``WRONGTYPE ...``): it is
    recognised here, once, and raised as ``WrongType``. Redis before 7 wraps an error raised
    inside a script (out of memory, a read-only replica) in a plain script error: recognised by
    its code, as the bare replies are by their exception class.
    """
    if _unreachable(error):
        kind = "timed out" if isinstance(error, RedisTimeoutError) else "is unreachable"
        return ConnectionInterrupted(f"Redis at {describe(client)} {kind}: {error}")
    if isinstance(error, _UNAVAILABLE) or (
        isinstance(error, ResponseError) and _SCRIPT_UNAVAILABLE.search(str(error))
    ):
        where = describe(client)
        return ConnectionInterrupted(f"Redis at {where} cannot take the command now: {error}")
    if isinstance(error, ResponseError) and str(error).startswith("WRONGTYPE"):
        return WrongType(f"Redis at {describe(client)} answered with an error: {error}")
    return RedisStoreError(f"Redis at {describe(client)} answered with an error: {error}")
