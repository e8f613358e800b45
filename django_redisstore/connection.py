"""Redis clients (process-wide, made on first use) and the drivers that send ``Call`` batches.

The engine builds every Redis interaction as a list of ``Call`` objects (see ``scripts``); this
module is the only place that knows whether they travel through ``redis.Redis`` or
``redis.asyncio.Redis``, and to which topology: one server (``REDISSTORE_URL`` or
``REDISSTORE_CACHE_ALIAS``), a primary found through Sentinel (``REDISSTORE_SENTINELS``), or a
Redis Cluster (``REDISSTORE_CLUSTER_NODES``). The clients are redis-py's own (``Sentinel``'s
``master_for``, ``RedisCluster``): routing by hash slot, redirections and failover are theirs.

A batch of one call is sent as it is, a longer batch as one non-transactional pipeline: one round
trip either way. On a cluster such a pipeline may span several primaries (redis-py sends each
its share at once); that is safe because every call touches one key (see ``keys``).

``run``/``arun`` drive a flow (a generator of such batches, see ``session``) to its end.
``scan_batches``, ``execute_plain`` and ``unlink`` serve the bulk tools, which walk the keyspace
(each primary in turn on a cluster).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from .conf import conf
from .exceptions import ConnectionInterrupted, RedisStoreError
from .scripts import LOAD_SLIDING, Call, Pause

logger = logging.getLogger("django_redisstore")

T = TypeVar("T")
#: A flow: a generator that yields batches of calls, receives their replies and returns a value.
Flow = Generator[list[Call] | Pause, list[Any], T]

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

# What redis-py raises: RedisClusterException is not a RedisError.
_ERRORS = (RedisError, RedisClusterException)

# Commands of the engine that only read: anything else is a write that REDISSTORE_WAIT_REPLICAS
# waits for. LOAD_SLIDING writes a TTL only, whose loss in a failover costs nothing.
_READS = frozenset({"GET", "EXISTS", "PTTL", "TTL", "ZRANGE", "ZSCORE", "ZCARD", "SCAN"})


def topology() -> str:
    """``"cluster"``, ``"sentinel"`` or ``"single"``, from the settings."""
    if conf.CLUSTER_NODES:
        return "cluster"
    if conf.SENTINELS:
        return "sentinel"
    return "single"


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
_REDIS_6 = int(redis.__version__.split(".")[0]) >= 6
_HEALTH_CHECKS = _REDIS_6


#: The settings that pick a client, as last read; None after a setting changed. Reading them
#: costs a dozen settings look-ups (most of them for settings left at their default), which
#: every Redis call would otherwise pay; ``setting_changed`` (override_settings) clears it.
_current_key: tuple[Any, ...] | None = None


def _config_key() -> tuple[Any, ...]:
    global _current_key
    key = _current_key
    if key is None:
        tls = conf.TLS
        key = _current_key = (
            conf.URL,
            conf.CACHE_ALIAS,
            repr(conf.SENTINELS),
            conf.SENTINEL_SERVICE,
            repr(sorted(conf.SENTINEL_OPTIONS.items())),
            repr(conf.CLUSTER_NODES),
            None if tls is None else repr(sorted(tls.items())),
            conf.CONNECT_TIMEOUT,
            conf.SOCKET_TIMEOUT,
            conf.RETRIES,
            repr(sorted(conf.CONNECTION_OPTIONS.items())),
        )
    return key


#: ``REDISSTORE_WAIT_REPLICAS`` as last read (None: read it again). Every batch asks whether
#: to follow its writes with ``WAIT``; a setting left at its default costs 2.5 us to look up.
_current_replicas: int | None = None


def _wait_replicas() -> int:
    global _current_replicas
    replicas = _current_replicas
    if replicas is None:
        replicas = _current_replicas = conf.WAIT_REPLICAS
    return replicas


def _forget_config(**kwargs: Any) -> None:
    global _current_key, _current_replicas
    _current_key = _current_replicas = None


setting_changed.connect(_forget_config, dispatch_uid="django_redisstore.connection")


def _tls_options() -> dict[str, Any]:
    """``REDISSTORE_TLS`` under redis-py's names (without ``ssl``: callers add it if needed)."""
    options: dict[str, Any] = {}
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
    if not _REDIS_6:  # redis-py 5 retries a command only on these errors, whatever ``retry`` says
        options["retry_on_error"] = [redis.ConnectionError]
    options.update(_tls_options())
    options.update(conf.CONNECTION_OPTIONS)
    return options


def _retry(module: Any) -> Any:
    # A broken connection (Redis restarted, a proxy cut it) is re-dialled REDISSTORE_RETRIES
    # times with a short backoff, never endlessly. Timeouts are not retried: a server that
    # stalled past SOCKET_TIMEOUT will not answer 20 ms later, and each retry would add a whole
    # timeout to the time the request hangs.
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
                except _ERRORS as e:  # RedisCluster connects as it is made
                    raise _translate(None, e) from e
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
    _forget_config()


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
    if _is_cluster(client):
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


def _unreachable(error: Exception) -> bool:
    if isinstance(error, _UNREACHABLE):
        return True
    # RedisCluster reports "no start node answers" as a bare RedisClusterException.
    return isinstance(error, RedisClusterException) and isinstance(error.__cause__, _UNREACHABLE)


def _translate(client: Any, error: Exception) -> RedisStoreError:
    if _unreachable(error):
        kind = "timed out" if isinstance(error, RedisTimeoutError) else "is unreachable"
        return ConnectionInterrupted(f"Redis at {describe(client)} {kind}: {error}")
    if isinstance(error, _UNAVAILABLE):
        where = describe(client)
        return ConnectionInterrupted(f"Redis at {where} cannot take the command now: {error}")
    return RedisStoreError(f"Redis at {describe(client)} answered with an error: {error}")


def _check(client: Any, results: list[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, _ERRORS):
            raise _translate(client, result) from result
    return results


def _key_of(call: Call) -> Any:
    return call.args[3] if call.script is not None else call.args[1]


def _first_write(calls: Sequence[Call]) -> Call | None:
    for call in calls:
        if call.script is LOAD_SLIDING or str(call.args[0]).upper() in _READS:
            continue
        return call
    return None


def _wait_for(client: Any, calls: Sequence[Call]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The ``WAIT`` that follows ``calls`` when they write and ``REDISSTORE_WAIT_REPLICAS`` asks
    for it, as (args, options); ``((), {})`` otherwise.

    ``WAIT`` counts the replicas that have every write made so far *on its connection*, so it
    travels in the same pipeline, to the primary of the first write's key (on a cluster the
    pipeline has one connection per primary): that is the session's own record.
    """
    replicas = _wait_replicas()
    write = _first_write(calls) if replicas > 0 else None
    if write is None:
        return (), {}
    args = ("WAIT", replicas, max(1, round(conf.WAIT_TIMEOUT * 1000)))
    if _is_cluster(client):
        return args, {"target_nodes": client.get_node_from_key(_key_of(write))}
    return args, {}


def _report_wait(acknowledged: Any, calls: Sequence[Call]) -> None:
    wanted = conf.WAIT_REPLICAS
    if isinstance(acknowledged, int) and acknowledged < wanted:
        write = _first_write(calls)
        logger.warning(
            "Only %d of %d replicas acknowledged the write to %s within %.3f s: "
            "a failover now could lose it",
            acknowledged,
            wanted,
            _key_of(write) if write else "?",
            conf.WAIT_TIMEOUT,
        )


def _pipeline(
    client: Any, calls: Sequence[Call], wait: tuple[Any, ...], wait_options: dict[str, Any]
) -> Any:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.args)
    if wait:
        pipe.execute_command(*wait, **wait_options)
    return pipe


def _unknown_scripts(calls: Sequence[Call], results: list[Any]) -> list[int]:
    """Where the server answered NOSCRIPT (a restart, a failover, a new node): those calls are
    sent again as EVAL, in a second pipeline that carries its own WAIT."""
    return [i for i, call in enumerate(calls) if isinstance(results[i], NoScriptError)]


def execute(client: Any, calls: Sequence[Call]) -> list[Any]:
    """Send ``calls`` in one round trip and return their replies, in order."""
    try:
        wait, wait_options = _wait_for(client, calls)
        if len(calls) == 1 and not wait:
            results = [_run_one(client, calls[0])]
        else:
            results = _pipeline(client, calls, wait, wait_options).execute(raise_on_error=False)
            if again := _unknown_scripts(calls, results):
                evals = [Call(calls[i].as_eval()) for i in again]
                pipe = _pipeline(client, evals, wait, wait_options)
                _take_eval_replies(results, again, pipe.execute(raise_on_error=False), wait)
    except _ERRORS as e:
        raise _translate(client, e) from e
    _check(client, results)
    if wait:
        _report_wait(results.pop(), calls)
    return results


def _take_eval_replies(
    results: list[Any], again: list[int], replies: list[Any], wait: object
) -> None:
    """Put the replies of the EVAL retry pipeline in the places of the calls it re-sent."""
    for i, reply in zip(again, replies, strict=False):
        results[i] = reply
    if wait:
        results[-1] = replies[-1]


def _run_one(client: Any, call: Call) -> Any:
    try:
        return client.execute_command(*call.args)
    except NoScriptError:
        return client.execute_command(*call.as_eval())


async def aexecute(client: Any, calls: Sequence[Call]) -> list[Any]:
    """The async twin of ``execute``."""
    try:
        if _wait_replicas() > 0 and isinstance(client, redis.asyncio.cluster.RedisCluster):
            await client.initialize()  # the slot map, to route the WAIT (a no-op once known)
        wait, wait_options = _wait_for(client, calls)
        if len(calls) == 1 and not wait:
            call = calls[0]
            try:
                results = [await client.execute_command(*call.args)]
            except NoScriptError:
                results = [await client.execute_command(*call.as_eval())]
        else:
            pipe = _pipeline(client, calls, wait, wait_options)
            results = await pipe.execute(raise_on_error=False)
            if again := _unknown_scripts(calls, results):
                evals = [Call(calls[i].as_eval()) for i in again]
                pipe = _pipeline(client, evals, wait, wait_options)
                _take_eval_replies(results, again, await pipe.execute(raise_on_error=False), wait)
    except _ERRORS as e:
        raise _translate(client, e) from e
    _check(client, results)
    if wait:
        _report_wait(results.pop(), calls)
    return results


# Drivers of flows -----------------------------------------------------------------------------


def run(flow: Flow[T]) -> T:
    """Drive ``flow`` with the sync client: one round trip per batch it yields.

    The client is fetched only once the flow has something to send: a flow that ends without
    I/O (a malformed key, nothing to save) costs no connection at all.
    """
    client = None
    try:
        step = next(flow)
        while True:
            if isinstance(step, Pause):
                time.sleep(step.seconds)
                step = flow.send([])
                continue
            if client is None:
                client = get_client()
            step = flow.send(execute(client, step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun(flow: Flow[T]) -> T:
    """The async twin of ``run``."""
    client = None
    try:
        step = next(flow)
        while True:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                step = flow.send([])
                continue
            if client is None:
                client = get_async_client()
            step = flow.send(await aexecute(client, step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def run_all(flows: Sequence[Flow[T]]) -> list[T]:
    """Drive several independent flows in lockstep, their batches merged into one pipeline.

    Bulk tools (``sessions import``) write thousands of sessions with the engine's own flows:
    step by step, every flow's next batch travels in the same round trip, so a thousand sessions
    cost the round trips of one. An exception raised by a flow propagates.
    """
    client = get_client()
    results: list[Any] = [None] * len(flows)
    pending: dict[int, list[Call] | Pause] = {}
    for i, flow in enumerate(flows):
        try:
            pending[i] = next(flow)
        except StopIteration as done:
            results[i] = done.value
    while pending:
        pauses = [step.seconds for step in pending.values() if isinstance(step, Pause)]
        if pauses:  # a flow backs off: all wait once, the pausing flows get their empty reply
            time.sleep(max(pauses))
        steps = [(i, [] if isinstance(s, Pause) else s) for i, s in pending.items()]
        replies = execute(client, [call for _, calls in steps for call in calls])
        pending = {}
        start = 0
        for i, calls in steps:
            part = replies[start : start + len(calls)]
            start += len(calls)
            try:
                pending[i] = flows[i].send(part)
            except StopIteration as done:
                results[i] = done.value
    return results


# Walking the keyspace --------------------------------------------------------------------------


def _is_cluster(client: Any) -> bool:
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def scan_progress(cursor: int) -> float:
    """How far a ``SCAN`` has got (0 to 1) after it returned ``cursor``.

    Redis walks its hash table in reverse-binary order: the cursor's bits read backwards grow
    steadily from 0 to the table size. That makes a progress bar possible without counting the
    keys first.
    """
    return int(f"{cursor:064b}"[::-1], 2) / 2**64 if cursor else 1.0


class Scanned(NamedTuple):
    """One ``SCAN`` step: the node it ran on (the client itself unless on Cluster), the keys it
    returned, and how far the whole walk has got (0 to 1)."""

    node: Any
    names: list[bytes]
    done: float


def _nodes(client: Any) -> list[Any]:
    if _is_cluster(client):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def scan_batches(client: redis.Redis, match: str, count: int = 1000) -> Iterator[Scanned]:
    """Every key matching ``match``, a ``SCAN`` reply at a time.

    Never ``KEYS``: each step is one short ``SCAN ... COUNT`` that lets other clients in. On Redis
    Cluster every primary is scanned in turn (a ``SCAN`` only sees the keys of the node it runs
    on), and each step names its node, so that the keys it found can be handled there. Keys
    present for the whole walk are returned at least once; a key may come twice.
    """
    nodes = _nodes(client)
    try:
        for done, node in enumerate(nodes):
            cursor = 0
            while True:
                cursor, names = node.scan(cursor, match=match, count=count)
                yield Scanned(node, names, (done + scan_progress(cursor)) / len(nodes))
                if not cursor:
                    break
    except _ERRORS as e:
        raise _translate(client, e) from e


async def ascan_batches(
    client: redis.asyncio.Redis, match: str, count: int = 1000
) -> AsyncIterator[Scanned]:
    """The async twin of ``scan_batches``. On Cluster each step names the cluster client (the
    async client has no per-node clients): commands about its keys are routed by key."""
    try:
        if _is_cluster(client):
            cluster: Any = client  # SCAN replies there are ({node: cursor}, keys)
            await cluster.initialize()  # discovers the nodes
            primaries = cluster.get_primaries()
            for done, node in enumerate(primaries):
                cursor = 0
                while True:
                    cursors, names = await cluster.scan(
                        cursor, match=match, count=count, target_nodes=node
                    )
                    cursor = cursors[node.name]
                    progress = (done + scan_progress(cursor)) / len(primaries)
                    yield Scanned(cluster, names, progress)
                    if not cursor:
                        break
            return
        cursor = 0
        while True:
            cursor, found = await client.scan(cursor, match=match, count=count)
            yield Scanned(client, found, scan_progress(cursor))  # type: ignore[arg-type]
            if not cursor:
                break
    except _ERRORS as e:
        raise _translate(client, e) from e


def _pack(commands: Sequence[Sequence[Any]]) -> bytes:
    parts: list[bytes] = []
    for args in commands:
        parts.append(b"*%d\r\n" % len(args))
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


def execute_plain(client: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send plain commands (no scripts) in one round trip and return their raw replies.

    For the bulk tools, which send thousands of small commands per ``SCAN`` step: this skips
    redis-py's per-command bookkeeping (a ``Command`` object, a response callback), which costs
    more than Redis's own work for commands like ``PTTL``. ``client`` must be the node the keys
    live on (a step of ``scan_batches`` names it); a Cluster client falls back to a routed
    pipeline.
    """
    if _is_cluster(client):
        return execute(client, [Call.command(*args) for args in commands])
    return execute_packed(client, _pack(commands), len(commands))


def execute_packed(client: Any, packed: bytes, count: int) -> list[Any]:
    """Send ``count`` commands already in the Redis protocol (``packed``) to one node, in one
    round trip, and return their raw replies. The fastest path, for the hottest loops (a
    session walk builds its commands from a byte template)."""
    if not count:
        return []
    pool = client.connection_pool
    # redis-py before 6 requires a command name here; 6 and later deprecate passing one.
    connection = pool.get_connection() if _REDIS_6 else pool.get_connection("PING")
    try:
        connection.send_packed_command([packed])
        read = connection.read_response
        replies = [read() for _ in range(count)]
    except RedisError as e:
        connection.disconnect()  # replies may still be in flight: never reuse it
        raise _translate(client, e) from e
    finally:
        pool.release(connection)
    return replies


def unlink(client: Any, names: Sequence[bytes | str]) -> int:
    """Unlink ``names`` (wherever they live) and return how many existed: one ``UNLINK`` for all
    of them, or one per key on Cluster (where a multi-key command must stay within one slot)."""
    if not names:
        return 0
    if _is_cluster(client):
        return sum(execute(client, [Call.command("UNLINK", name) for name in names]))
    return int(execute_plain(client, [("UNLINK", *names)])[0])
