"""Flows, and the one executor that sends their calls to Redis.

Private: no stable API.

The engine writes each Redis operation once, as a *flow*: a generator that yields batches of
``Call`` objects (one Redis command each, as plain data), receives their replies and returns a
value; a ``Pause`` asks to wait before the next batch (the backoff between conflicting saves),
an ``Announce`` to send ``session_ended`` for sessions whose deletion Redis just confirmed.
``run`` drives a flow with the sync client and ``arun`` with the async one, so the sync and async
APIs share all but the socket; ``run_all`` drives many flows in lockstep (``sessions import``).

``execute``/``aexecute`` send one batch: a batch of one call as it is, a longer batch as one
non-transactional pipeline, one round trip either way. On a cluster such a pipeline may span
several primaries (redis-py sends each its share at once); that is safe because every call
touches one key (see ``keys``). They also add the ``WAIT`` that ``REDISSTORE_WAIT_REPLICAS``
asks for (again on the new primary when a cluster's write was redirected by ``MOVED``),
re-send a script the server has forgotten (NOSCRIPT) as ``EVAL``, and raise what redis-py
reports as the engine's exceptions (``clients.translate_error``): with the scans and packed
pipelines of ``keyspace``, the only code that talks to Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio.cluster
from redis.exceptions import NoScriptError

# ``run``/``arun``/``run_all`` call the client getters through this module's namespace: tests
# replace ``flows.get_client`` / ``flows.get_async_client`` to forbid a client.
from . import signals
from .clients import REDIS_ERRORS, get_async_client, get_client, is_cluster, translate_error
from .conf import conf
from .conf import get as get_settings

logger = logging.getLogger("django_redisstore")


@dataclass(frozen=True)
class Script:
    """A Lua script, called by its SHA (``EVALSHA``), sent whole where the server lacks it."""

    name: str
    source: str
    #: It writes nothing but a TTL, whose loss in a failover costs nothing: no ``WAIT`` for it.
    ttl_only: bool = False
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def call(self, key: str, *args: Any) -> Call:
        return Call(("EVALSHA", self.sha, 1, key, *args), self)


class Call:
    """One command for ``execute_command``; ``script`` is set for ``EVALSHA`` calls, so that the
    executor can fall back to ``EVAL`` where the server does not know the script yet.

    A plain class with slots, not a frozen dataclass: every read and save makes one or two, and
    a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs twice as much.
    Treat it as immutable all the same.
    """

    __slots__ = ("args", "script")

    def __init__(self, args: tuple[Any, ...], script: Script | None = None) -> None:
        self.args = args
        self.script = script

    def __repr__(self) -> str:
        return f"Call({self.args!r}, {self.script.name if self.script else None})"

    @classmethod
    def command(cls, *args: Any) -> Call:
        return cls(args)

    def as_eval(self) -> tuple[Any, ...]:
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args[2:])


@dataclass(frozen=True)
class Pause:
    """A flow's request to wait before its next batch: the backoff between conflicting saves.

    The sync driver sleeps, the async driver awaits; the flow receives an empty reply list.
    """

    seconds: float


@dataclass(frozen=True)
class Announce:
    """A flow's report that Redis confirmed the deletion of ``sessions`` ((user id or None,
    hashed id) each): the sync driver sends ``session_ended`` with ``signals.ended``, the async
    one with ``signals.aended``; the flow receives an empty reply list."""

    sessions: tuple[tuple[str | None, str], ...]
    reason: str


T = TypeVar("T")
#: A flow: a generator that yields batches of calls, receives their replies and returns a value.
Flow = Generator[list[Call] | Pause | Announce, list[Any], T]

# Commands of the engine that only read: anything else is a write that REDISSTORE_WAIT_REPLICAS
# waits for (and neither is a script that writes a TTL only: ``Script.ttl_only``).
_READS = frozenset({"GET", "EXISTS", "PTTL", "TTL", "ZRANGE", "ZSCORE", "ZCARD", "SCAN"})


def _wait_replicas() -> int:
    return get_settings().WAIT_REPLICAS


def _check(client: Any, results: list[Any]) -> list[Any]:
    for result in results:
        if isinstance(result, REDIS_ERRORS):
            raise translate_error(client, result) from result
    return results


def _key_of(call: Call) -> Any:
    return call.args[3] if call.script is not None else call.args[1]


def _first_write(calls: Sequence[Call]) -> Call | None:
    for call in calls:
        if call.script is not None and call.script.ttl_only:
            continue
        if str(call.args[0]).upper() not in _READS:
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
    if is_cluster(client):
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


#: A write that changes nothing (a scratch key set and deleted at once) but is replicated: a
#: ``WAIT`` behind it, on any connection, waits for everything its node did before it.
_MARK = "redis.call('SET', KEYS[1], '1') redis.call('DEL', KEYS[1]) return 1"


def _scratch_name(key: Any) -> str:
    """A key name in the hash slot of ``key`` (its hash tag, or the whole name as a tag)."""
    name = key.decode() if isinstance(key, bytes) else str(key)
    start = name.find("{")
    end = name.find("}", start + 1) if start != -1 else -1
    tag = name[start + 1 : end] if end > start + 1 else name
    return "{" + tag + "}:redisstore:wait"


def _moved_wait(
    client: Any, calls: Sequence[Call], wait: tuple[Any, ...], wait_options: dict[str, Any]
) -> Any:
    """The pipeline that waits again when the write's slot moved while the batch ran; or None.

    redis-py follows a ``MOVED`` answer by sending the write again to the slot's new primary,
    on a connection of its own: the batch's ``WAIT`` went to the old primary and waited for
    nothing. The follow-up goes to the new one, behind a write that changes nothing, so that it
    waits for that node's writes up to it, the redirected write among them.
    """
    node = wait_options.get("target_nodes") if wait else None
    write = _first_write(calls)
    if node is None or write is None:
        return None
    key = _key_of(write)
    now = client.get_node_from_key(key)
    if now.name == node.name:
        return None
    logger.info("Waiting for replicas on %s, where the write to %s moved", now.name, key)
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("EVAL", _MARK, 1, _scratch_name(key))
    pipe.execute_command(*wait, target_nodes=now)
    return pipe


def _take_moved_wait(results: list[Any], replies: list[Any]) -> None:
    """The follow-up's WAIT reply in place of the batch's (its mark's error, if it failed)."""
    mark, acknowledged = replies
    results[-1] = mark if isinstance(mark, Exception) else acknowledged


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
                pipe = _evals(client, calls, again, wait, wait_options)
                _take_eval_replies(results, again, pipe.execute(raise_on_error=False), wait)
            if moved := _moved_wait(client, calls, wait, wait_options):
                _take_moved_wait(results, moved.execute(raise_on_error=False))
    except REDIS_ERRORS as e:
        raise translate_error(client, e) from e
    return _replies(client, calls, results, wait)


def _evals(
    client: Any,
    calls: Sequence[Call],
    again: list[int],
    wait: tuple[Any, ...],
    wait_options: dict[str, Any],
) -> Any:
    """The pipeline that re-sends the calls at ``again`` as ``EVAL`` (with its own WAIT)."""
    return _pipeline(client, [Call(calls[i].as_eval()) for i in again], wait, wait_options)


def _replies(client: Any, calls: Sequence[Call], results: list[Any], wait: object) -> list[Any]:
    """The replies of ``calls``: an error among them raised, the WAIT's reply taken off."""
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
                pipe = _evals(client, calls, again, wait, wait_options)
                _take_eval_replies(results, again, await pipe.execute(raise_on_error=False), wait)
            if moved := _moved_wait(client, calls, wait, wait_options):
                _take_moved_wait(results, await moved.execute(raise_on_error=False))
    except REDIS_ERRORS as e:
        raise translate_error(client, e) from e
    return _replies(client, calls, results, wait)


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
            if isinstance(step, Announce):
                signals.ended(step.sessions, step.reason)
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
            if isinstance(step, Announce):
                await signals.aended(step.sessions, step.reason)
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

    def advance(i: int, step: list[Call] | Pause | Announce) -> None:
        while isinstance(step, Announce):  # sent at once: its deletion is confirmed
            signals.ended(step.sessions, step.reason)
            step = flows[i].send([])
        pending[i] = step

    for i, flow in enumerate(flows):
        try:
            advance(i, next(flow))
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
                advance(i, flows[i].send(part))
            except StopIteration as done:
                results[i] = done.value
    return results
