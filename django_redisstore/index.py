"""The per-user index: list a user's live sessions, end them ("sign out everywhere"), prune it.

Public: ``user_sessions``, ``end_user_sessions``, their async twins and ``SessionInfo`` (all
importable from ``django_redisstore``); the rest is private (no stable API).

The engine files every signed-in session under ``<prefix>:u:<user id>`` (see ``keys``) as it
writes it. An entry can outlive its session: Redis expired the session early (``maxmemory``
eviction), or something deleted it without telling the index. So nothing here trusts an entry:
each listed session is fetched (``GET`` + ``PTTL``, all of them in one pipeline), verified and
decoded with the engine's own codec, and entries whose session is gone, or now belongs to
someone else, are removed from the index on the way. Entries whose score has passed are
certainly gone and are dropped without a look.

Each operation is one flow, driven by ``flows.run`` or ``flows.arun``: the sync and
async functions differ only in the driver. Reading a user's sessions costs two round trips (three
when it prunes), ending them one more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import codec, keys, signals
from .clients import get_async_client, get_client
from .conf import conf
from .conf import get as get_settings
from .devices import Device, device_of
from .flows import Call, Flow, arun, run
from .keyspace import ascan_batches, get_with_ttl, scan_batches, with_ttl
from .scripts import INDEX_READ

logger = logging.getLogger("django_redisstore")

UTC = timezone.utc

#: User indexes examined per pipeline when ``clearsessions`` walks all of them.
_PRUNE_BATCH = 200


@dataclass(frozen=True)
class SessionInfo:
    """One live session, as the tools show it (never the cookie value: only its hashed id)."""

    #: The hashed id: the last part of the Redis key ``<prefix>:s:<id>``.
    id: str
    #: ``_auth_user_id`` of the session, or None for an anonymous one.
    user_id: str | None
    #: When the session was created, and last written (aware, UTC).
    created: datetime
    saved: datetime
    #: Bytes the record takes in Redis (header, and payload as stored, compressed or not).
    size: int
    #: When Redis will drop the session if nothing extends it (aware, UTC).
    expires_at: datetime
    #: Whole seconds left until ``expires_at``.
    ttl: int
    #: The device record ``DeviceMiddleware`` keeps in the session (user agent, IP, last seen).
    device: Device | None = None


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def session_info(
    sid: str, record: codec.Record, data: dict[str, Any], pttl: int, now: float
) -> SessionInfo:
    """The record of a session read from Redis (``pttl`` in milliseconds, as ``PTTL`` says).

    A key without a TTL (``PTTL`` -1: the engine never writes one, but someone may have run
    ``PERSIST``) is still a live session: its ``ttl`` is -1 and ``expires_at`` the end of time.
    """
    return SessionInfo(
        id=sid,
        user_id=codec.user_of(data),
        created=utc(record.created),
        saved=utc(record.saved),
        size=record.size,
        expires_at=utc(now + pttl / 1000) if pttl >= 0 else datetime.max.replace(tzinfo=UTC),
        ttl=pttl // 1000 if pttl >= 0 else -1,
        device=device_of(data),
    )


def user_key(user: Any) -> str:
    """The id under which the engine indexes ``user`` (a user instance or a primary key).

    The same string as Django's ``login()`` stores in the session (``_auth_user_id``).
    """
    meta = getattr(user, "_meta", None)
    if meta is not None:
        return str(meta.pk.value_to_string(user))
    return str(user)


def decode(name: str, blob: bytes) -> tuple[codec.Record, dict[str, Any]]:
    """Verify and decode another session's record, as a request's read would (``SECRET_KEY``,
    then its fallbacks); raise ``codec.InvalidRecord`` if it fails."""
    return codec.decode(name, blob, keys.secrets(), get_settings().serializer)


def sessions_flow(user_ids: Sequence[str]) -> Flow[tuple[dict[str, list[SessionInfo]], int]]:
    """The live sessions of each of ``user_ids``, and how many stale entries were pruned."""
    now = time.time()
    names = [keys.user_index_name(user) for user in user_ids]
    replies = yield [INDEX_READ.call(name, repr(now)) for name in names]
    pruned = sum(dropped for dropped, _ in replies)
    listed = [
        (user, member.decode())
        for user, (_, members) in zip(user_ids, replies, strict=True)
        for member in members
    ]
    found: dict[str, list[SessionInfo]] = {user: [] for user in user_ids}
    if not listed:
        return found, pruned
    replies = yield get_with_ttl([keys.session_name(sid) for _, sid in listed])
    stale: dict[str, list[str]] = {}
    for (user, sid), fetched in zip(listed, with_ttl(replies), strict=True):
        info = None
        if fetched is not None:
            blob, pttl = fetched
            try:
                record, data = decode(keys.session_name(sid), blob)
            except codec.InvalidRecord:
                pass  # not a session this site can read: as good as gone
            else:
                info = session_info(sid, record, data, pttl, now)
        if info is None or info.user_id != user:
            stale.setdefault(user, []).append(sid)
        else:
            found[user].append(info)
    if stale:
        yield [
            Call.command("ZREM", keys.user_index_name(user), *sids) for user, sids in stale.items()
        ]
        pruned += sum(len(sids) for sids in stale.values())
    for infos in found.values():
        infos.sort(key=lambda info: (info.created, info.id))
    return found, pruned


def _user_sessions_flow(user: Any) -> Flow[list[SessionInfo]]:
    user_id = user_key(user)
    found, _ = yield from sessions_flow([user_id])
    return found[user_id]


def _end_flow(
    user: Any, keep: str | None, ids: Collection[str] | None
) -> Flow[tuple[str, list[str]]]:
    """End ``user``'s sessions but the one whose cookie value is ``keep`` (only those whose
    hashed id is in ``ids``, when given): the user's id, and the hashed ids of the sessions
    that were there to end (the ``UNLINK`` replies say).

    Only sessions verified to be the user's are deleted (a stale entry, or an id of someone
    else's session, never ends that session), and only their entries leave the index.
    """
    user_id = user_key(user)
    kept = keys.session_id(keep) if keep and keys.is_valid_session_key(keep) else None
    found, _ = yield from sessions_flow([user_id])
    doomed = [
        info.id for info in found[user_id] if info.id != kept and (ids is None or info.id in ids)
    ]
    if not doomed:
        return user_id, []
    replies = yield [
        *(Call.command("UNLINK", keys.session_name(sid)) for sid in doomed),
        Call.command("ZREM", keys.user_index_name(user_id), *doomed),
    ]
    return user_id, [sid for sid, reply in zip(doomed, replies[:-1], strict=True) if reply]


def user_sessions(user: Any) -> list[SessionInfo]:
    """The live sessions of ``user`` (a user instance or a primary key), oldest first."""
    return run(_user_sessions_flow(user))


async def auser_sessions(user: Any) -> list[SessionInfo]:
    """The async twin of ``user_sessions``."""
    return await arun(_user_sessions_flow(user))


def end_user_sessions(
    user: Any,
    keep: str | None = None,
    *,
    ids: Collection[str] | None = None,
    reason: str = signals.USER,
) -> int:
    """End every session of ``user`` but the one with the session key ``keep`` (for "sign out
    everywhere else": ``keep=request.session.session_key``); return how many were ended.

    ``ids`` limits it to the sessions with those hashed ids (``SessionInfo.id``): "sign out
    that device". Ids that are not the user's sessions are ignored. Each ended session then
    sends ``signals.session_ended`` with ``reason``.
    """
    signals.check(reason)
    user_id, ended = run(_end_flow(user, keep, ids))
    signals.ended(((user_id, sid) for sid in ended), reason)
    return len(ended)


async def aend_user_sessions(
    user: Any,
    keep: str | None = None,
    *,
    ids: Collection[str] | None = None,
    reason: str = signals.USER,
) -> int:
    """The async twin of ``end_user_sessions``."""
    signals.check(reason)
    user_id, ended = await arun(_end_flow(user, keep, ids))
    await signals.aended(((user_id, sid) for sid in ended), reason)
    return len(ended)


def _user_ids(index_names: Sequence[bytes]) -> list[str]:
    start = len(keys.user_index_name(""))
    return [name.decode()[start:] for name in index_names]


def _prune_flow(user_ids: Sequence[str]) -> Flow[int]:
    _, pruned = yield from sessions_flow(user_ids)
    return pruned


def _report(indexes: int, pruned: int) -> None:
    logger.info(
        "Pruned %d stale entr%s from %d user index%s under the prefix %r "
        "(Redis expires the sessions themselves).",
        pruned,
        "y" if pruned == 1 else "ies",
        indexes,
        "" if indexes == 1 else "es",
        conf.KEY_PREFIX,
    )


def prune_indexes() -> tuple[int, int]:
    """Walk every user index of this prefix and drop its stale entries (``clearsessions``).

    Returns (indexes examined, entries pruned) and logs them at INFO. Streams: a few hundred
    indexes per pipeline, never all of them in memory.
    """
    indexes = pruned = 0
    batch: list[bytes] = []
    for _, names, _ in scan_batches(get_client(), keys.user_index_pattern()):
        batch += names
        while len(batch) >= _PRUNE_BATCH:
            chunk, batch = batch[:_PRUNE_BATCH], batch[_PRUNE_BATCH:]
            indexes += len(chunk)
            pruned += run(_prune_flow(_user_ids(chunk)))
    if batch:
        indexes += len(batch)
        pruned += run(_prune_flow(_user_ids(batch)))
    _report(indexes, pruned)
    return indexes, pruned


async def aprune_indexes() -> tuple[int, int]:
    """The async twin of ``prune_indexes``."""
    indexes = pruned = 0
    batch: list[bytes] = []
    async for _, names, _ in ascan_batches(get_async_client(), keys.user_index_pattern()):
        batch += names
        while len(batch) >= _PRUNE_BATCH:
            chunk, batch = batch[:_PRUNE_BATCH], batch[_PRUNE_BATCH:]
            indexes += len(chunk)
            pruned += await arun(_prune_flow(_user_ids(chunk)))
    if batch:
        indexes += len(batch)
        pruned += await arun(_prune_flow(_user_ids(batch)))
    _report(indexes, pruned)
    return indexes, pruned
