"""Redis clients (process-wide, made on first use) and the drivers that send ``Call`` batches.

The engine builds every Redis interaction as a list of ``Call`` objects (see ``scripts``); this
module is the only place that knows whether they travel through ``redis.Redis`` or
``redis.asyncio.Redis``. A batch of one call is sent as it is, a longer batch as one
non-transactional pipeline: one round trip either way. ``run``/``arun`` drive a flow (a
generator of such batches, see ``session``) to its end. ``scan_batches``, ``execute_plain`` and
``unlink`` serve the bulk tools, which walk the keyspace.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from .conf import conf
from .exceptions import ConnectionInterrupted, RedisStoreError
from .scripts import Call, Pause

T = TypeVar("T")
#: A flow: a generator that yields batches of calls, receives their replies and returns a value.
Flow = Generator[list[Call] | Pause, list[Any], T]

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
            conf.RETRIES,
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


async def aclose() -> None:
    """Close the async clients of the running event loop.

    Async clients belong to one event loop and cannot outlive it: call this before a loop ends
    (ASGI lifespan shutdown, the end of ``asyncio.run``), or its sockets are left for the
    garbage collector to find open.
    """
    per_loop = _async_clients.pop(asyncio.get_running_loop(), {})
    for client in per_loop.values():
        await client.aclose()
        await client.connection_pool.disconnect()


def describe(client: redis.Redis | redis.asyncio.Redis) -> str:
    """Where ``client`` connects to, for error messages: never a password."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


#: Answers meaning "this server cannot take the command now" (full under noeviction, a replica
#: after a failover, a cluster re-sharding): an outage for the request, like a dropped link.
_UNAVAILABLE = (OutOfMemoryError, ReadOnlyError, ClusterDownError, TryAgainError)


def _translate(client: Any, error: RedisError) -> RedisStoreError:
    if isinstance(error, (redis.ConnectionError, RedisTimeoutError)):
        kind = "timed out" if isinstance(error, RedisTimeoutError) else "is unreachable"
        return ConnectionInterrupted(f"Redis at {describe(client)} {kind}: {error}")
    if isinstance(error, _UNAVAILABLE):
        where = describe(client)
        return ConnectionInterrupted(f"Redis at {where} cannot take the command now: {error}")
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
    except RedisError as e:
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
    except RedisError as e:
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
    connection = pool.get_connection()
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
