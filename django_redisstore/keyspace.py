"""Walking the keyspace, for the bulk tools (``sessions inspect``/``purge``, the importers, the
per-user indexes).

Private: no stable API.

``scan_batches``/``ascan_batches`` visit every key matching a pattern one ``SCAN`` step at a time
(each primary in turn on a cluster), with ``scan_progress`` telling how far the walk has got.
``execute_plain``/``execute_packed`` send the thousands of small plain commands such a step
calls for at less cost per command than ``flows.execute``; ``unlink`` removes keys wherever
they live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, NamedTuple

import redis
import redis.asyncio
from redis.exceptions import RedisError, ResponseError

from .clients import REDIS_6, REDIS_ERRORS, is_cluster, translate_error
from .flows import Call, execute


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
    if is_cluster(client):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def scan_batches(
    client: redis.Redis | redis.cluster.RedisCluster, match: str, count: int = 1000
) -> Iterator[Scanned]:
    """Every key matching ``match``, a ``SCAN`` reply at a time.

    Never ``KEYS``: each step is one short ``SCAN ... COUNT`` that lets other clients in. On Redis
    Cluster every primary is scanned in turn (a ``SCAN`` only sees the keys of the node it runs
    on), and each step names its node, so that the keys it found can be handled there. Keys
    present for the whole walk are returned at least once; a key may come twice.
    """
    try:
        nodes = _nodes(client)
        for done, node in enumerate(nodes):
            cursor = 0
            while True:
                cursor, names = node.scan(cursor, match=match, count=count)
                yield Scanned(node, names, (done + scan_progress(cursor)) / len(nodes))
                if not cursor:
                    break
    except REDIS_ERRORS as e:
        raise translate_error(client, e) from e


async def ascan_batches(
    client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster, match: str, count: int = 1000
) -> AsyncIterator[Scanned]:
    """The async twin of ``scan_batches``. On Cluster each step names the cluster client (the
    async client has no per-node clients): commands about its keys are routed by key."""
    try:
        if is_cluster(client):
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
    except REDIS_ERRORS as e:
        raise translate_error(client, e) from e


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
    if is_cluster(client):
        return execute(client, [Call.command(*args) for args in commands])
    return execute_packed(client, _pack(commands), len(commands))


def execute_packed(client: Any, packed: bytes, count: int) -> list[Any]:
    """Send ``count`` commands already in the Redis protocol (``packed``) to one node, in one
    round trip, and return their raw replies. The fastest path, for the hottest loops (a
    session walk builds its commands from a byte template).

    An error reply (``WRONGTYPE`` from a key of another type) is returned in its place, as a
    ``ResponseError``, like redis-py's pipelines do with ``raise_on_error=False``: the caller
    decides. Any other failure raises."""
    if not count:
        return []
    pool = client.connection_pool
    # redis-py before 6 requires a command name here; 6 and later deprecate passing one.
    connection = pool.get_connection() if REDIS_6 else pool.get_connection("PING")
    try:
        connection.send_packed_command([packed])
        replies = [_read_reply(connection) for _ in range(count)]
    except RedisError as e:
        connection.disconnect()  # replies may still be in flight: never reuse it
        raise translate_error(client, e) from e
    finally:
        pool.release(connection)
    return replies


def _read_reply(connection: Any) -> Any:
    try:
        return connection.read_response()
    except ResponseError as e:  # the whole error reply was read: the connection is fine
        return e


def unlink(client: Any, names: Sequence[bytes | str]) -> int:
    """Unlink ``names`` (wherever they live) and return how many existed: one ``UNLINK`` for all
    of them, or one per key on Cluster (where a multi-key command must stay within one slot)."""
    if not names:
        return 0
    if is_cluster(client):
        return sum(execute(client, [Call.command("UNLINK", name) for name in names]))
    return int(execute_plain(client, [("UNLINK", *names)])[0])


#: Called now and then during a walk with the fraction done (0 to 1) and the keys seen.
Progress = Callable[[float, int], None]


def get_with_ttl(names: Sequence[str | bytes]) -> list[Call]:
    """``GET`` and ``PTTL`` of each of ``names``: one batch, its replies for ``with_ttl``."""
    return [Call.command(command, name) for name in names for command in ("GET", "PTTL")]


def with_ttl(replies: Sequence[Any]) -> list[tuple[bytes, int] | None]:
    """The value and ``PTTL`` (ms) of each key ``get_with_ttl`` asked about, in order; None for
    a key that is gone (``PTTL`` -2: it went between the two commands)."""
    pairs = zip(replies[0::2], replies[1::2], strict=True)
    return [None if value is None or pttl == -2 else (value, pttl) for value, pttl in pairs]
