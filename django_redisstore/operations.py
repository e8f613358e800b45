"""Bulk operations on this prefix's sessions: what ``manage.py sessions inspect`` and ``purge``
run. The command only parses arguments and formats what these functions return.

Private: no stable API.

Everything streams: the keyspace is walked with ``SCAN ... MATCH <prefix>:s:* COUNT 1000``
(never ``KEYS``), each reply is handled with a few pipelines and then forgotten, so memory
stays flat however many sessions there are. Only keys of this prefix are read or deleted.

Most of the walk reads only each record's 34-byte header (``GETRANGE 0 33``) and its ``PTTL``:
created, saved, sliding TTL, ``until`` (non-zero exactly when a user is signed in) and the MAC.
A purge that selects sessions by these fields deletes each with ``scripts.DELETE_IF_UNCHANGED``:
a session that a request wrote after the scan read it was in use, and is left alone.
"""

from __future__ import annotations

import bisect
import heapq
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth import SESSION_KEY

from . import codec, keys, signals
from .clients import get_client
from .flows import Call, execute, run
from .index import (
    SessionInfo,
    decode,
    end_user_sessions,
    session_info,
    sessions_flow,
    user_sessions,
    utc,
)
from .keyspace import (
    Progress,
    Scanned,
    execute_packed,
    execute_plain,
    get_with_ttl,
    scan_batches,
    unlink,
    with_ttl,
)
from .scripts import DELETE_IF_UNCHANGED

#: ``SCAN`` hint: keys per step. Larger steps mean fewer round trips, longer single commands.
SCAN_COUNT = 1000
#: ``MEMORY USAGE`` is asked of the first sessions a walk meets (``SCAN`` order is the hash
#: table's: as good as random), then of one in ``MEMORY_SAMPLE_EVERY``.
MEMORY_SAMPLE_ALL = 1000
MEMORY_SAMPLE_EVERY = 100
#: Bucket edges (seconds) of the TTL and age histograms, and their labels.
HISTOGRAM_EDGES = (3600, 86400, 7 * 86400, 14 * 86400)
HISTOGRAM_LABELS = ("< 1h", "1h - 1d", "1d - 7d", "7d - 14d", ">= 14d")
TOP_USERS = 10

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``45m``, ``12h``, ``7d``, ``2w`` or a sum such as ``1d12h``."""
    text = text.strip().lower()
    if not text or _DURATION.sub("", text):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (s, m, h, d, w), "
            "for example 90s, 12h or 7d"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def _bucket(seconds: float) -> int:
    return bisect.bisect_right(HISTOGRAM_EDGES, seconds)


def last_used(header: codec.Header, pttl: int, now: float) -> float:
    """When a session was last used, as far as Redis can tell.

    A write sets ``saved``. When the session's expiry slides (``idle`` > 0), every write and
    every sliding read (``SESSION_SAVE_EVERY_REQUEST``) resets its TTL to ``idle`` seconds, so
    the time since then is ``idle`` minus the TTL left. Without sliding, a read leaves no trace.
    """
    if header.idle and pttl > 0:
        return max(float(header.saved), now - (header.idle - pttl / 1000))
    return float(header.saved)


# Walking the sessions ---------------------------------------------------------------------------


class Seen(NamedTuple):
    """One session as a walk sees it: its key, header and remaining TTL (ms)."""

    name: bytes
    header: codec.Header
    pttl: int


def _walk(
    progress: Progress | None = None, *, memory: list[int] | None = None
) -> Iterator[tuple[Any, list[Seen]]]:
    """This prefix's sessions, a ``SCAN`` step at a time: the node they live on, and each one's
    header and TTL.

    ``memory``, when given, receives the ``MEMORY USAGE`` of one session in
    ``MEMORY_SAMPLE_EVERY``. Keys that vanish between the scan and the read are skipped.
    """
    seen = 0
    for node, names, done in scan_batches(get_client(), keys.session_pattern(), SCAN_COUNT):
        if names:
            packed = [_READ_HEADER % (len(name), name, len(name), name) for name in names]
            sampled = []
            if memory is not None:
                sampled = [
                    name
                    for i, name in enumerate(names, seen)
                    if i < MEMORY_SAMPLE_ALL or i % MEMORY_SAMPLE_EVERY == 0
                ]
                packed += [_MEMORY_USAGE % (len(name), name) for name in sampled]
            seen += len(names)
            replies = execute_packed(node, b"".join(packed), 2 * len(names) + len(sampled))
            end = 2 * len(names)
            batch = []
            for name, blob, pttl in zip(names, replies[0:end:2], replies[1:end:2], strict=True):
                if pttl == -2:
                    continue
                try:
                    batch.append(Seen(name, codec.header_of(blob), pttl))
                except codec.InvalidRecord:
                    continue  # not a record of ours: never counted, never deleted
            if memory is not None:
                memory += [m for m in replies[end:] if m is not None]
            yield node, batch
        if progress is not None:
            progress(done, seen)


#: ``GETRANGE <name> 0 33`` and ``PTTL <name>`` in the Redis protocol, for ``% (len, name) * 2``:
#: formatting one template per session is several times faster than packing two commands.
_READ_HEADER = (
    b"*4\r\n$8\r\nGETRANGE\r\n$%d\r\n%s\r\n$1\r\n0\r\n$2\r\n"
    + str(codec.HEADER_SIZE - 1).encode()
    + b"\r\n*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n"
)
#: ``MEMORY USAGE <name> SAMPLES 0``.
_MEMORY_USAGE = b"*5\r\n$6\r\nMEMORY\r\n$5\r\nUSAGE\r\n$%d\r\n%s\r\n$7\r\nSAMPLES\r\n$1\r\n0\r\n"


# inspect ----------------------------------------------------------------------------------------


@dataclass
class Summary:
    """What ``sessions inspect`` shows about all sessions of the prefix."""

    total: int = 0
    authenticated: int = 0
    anonymous: int = 0
    users: int = 0
    top_users: list[tuple[str, int]] = field(default_factory=list)
    ttl_histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_LABELS))
    age_histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_LABELS))
    memory_bytes: int = 0
    memory_samples: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None


def summarize(progress: Progress | None = None) -> Summary:
    """Count, classify and measure every session of this prefix, then rank users by sessions.

    Sessions are counted from the records (``until`` set = signed in); users and their
    session counts from the per-user index, and the top users' counts are then verified
    session by session (which prunes their stale entries).
    """
    summary = Summary()
    now = time.time()
    memory: list[int] = []
    oldest = newest = None
    for _, batch in _walk(progress, memory=memory):
        for seen in batch:
            header = seen.header
            summary.total += 1
            if header.until:
                summary.authenticated += 1
            summary.ttl_histogram[_bucket(seen.pttl / 1000)] += 1
            summary.age_histogram[_bucket(now - header.created)] += 1
            if oldest is None or header.created < oldest:
                oldest = header.created
            if newest is None or header.created > newest:
                newest = header.created
    summary.anonymous = summary.total - summary.authenticated
    summary.oldest = None if oldest is None else utc(oldest)
    summary.newest = None if newest is None else utc(newest)
    summary.memory_samples = len(memory)
    if memory:
        summary.memory_bytes = round(sum(memory) / len(memory) * summary.total)
    summary.users, top = _count_users(now)
    if top:
        found, _ = run(sessions_flow([user for _, user in top]))
        ranked = sorted(((len(infos), user) for user, infos in found.items()), reverse=True)
        summary.top_users = [(user, count) for count, user in ranked if count]
    return summary


def _count_users(now: float) -> tuple[int, list[tuple[int, str]]]:
    """Users with an entry that has not passed, and the ``TOP_USERS`` with most entries."""
    start = len(keys.user_index_name(""))
    users = 0
    top: list[tuple[int, str]] = []
    for node, names, _ in scan_batches(get_client(), keys.user_index_pattern(), SCAN_COUNT):
        counts = execute_plain(node, [("ZCOUNT", n, repr(now), "+inf") for n in names])
        for name, count in zip(names, counts, strict=True):
            if count:
                users += 1
                entry = (count, name.decode()[start:])
                if len(top) < TOP_USERS:
                    heapq.heappush(top, entry)
                else:
                    heapq.heappushpop(top, entry)
    return users, sorted(top, reverse=True)


def find_session(session_key: str) -> tuple[SessionInfo, dict[str, Any]] | None:
    """The session whose cookie value is ``session_key`` and its decoded data, or None."""
    client = get_client()
    now = time.time()
    names = [keys.session_name(keys.session_id(session_key, s)) for s in keys.secrets()]
    replies = execute(client, get_with_ttl(names))
    for name, found in zip(names, with_ttl(replies), strict=True):
        if found is None:
            continue
        blob, pttl = found
        try:
            record, data = decode(name, blob)
        except codec.InvalidRecord:
            continue
        return session_info(name.rsplit(":", 1)[1], record, data, pttl, now), data
    return None


def user_is_indexed(user_id: str) -> bool:
    """Whether ``user_id`` has an index (a user deleted from the database may still have one)."""
    (found,) = execute(get_client(), [Call.command("EXISTS", keys.user_index_name(user_id))])
    return bool(found)


# purge ------------------------------------------------------------------------------------------


def purge_all(*, dry_run: bool, progress: Progress | None = None) -> int:
    """End every session of this prefix and drop its user indexes; return how many sessions.

    One walk over both kinds of key. An index is emptied with one atomic ``ZPOPMIN`` and the
    sessions it listed are deleted with it: a login racing the purge either is listed there
    (and ends), or files its session in a fresh index. So no session survives the purge
    without its index entry, whichever of the two keys the walk meets first.
    """
    client = get_client()
    if dry_run:
        return sum(len(names) for _, names, _ in _with_progress(keys.session_pattern(), progress))
    session_prefix = keys.session_name("").encode()
    ended = 0
    for node, names, _ in _with_progress(keys.engine_pattern(), progress):
        sessions = [name for name in names if name.startswith(session_prefix)]
        indexes = [name for name in names if not name.startswith(session_prefix)]
        ended += _end(client, sessions)
        if indexes:
            popped = execute_plain(node, [("ZPOPMIN", name, _POP_ALL) for name in indexes])
            listed = [keys.session_name(sid.decode()) for sid in _members(popped)]
            ended += _end(client, listed)
    return ended


def _end(client: Any, names: Sequence[bytes | str]) -> int:
    """Delete the sessions ``names``; how many existed. One ``UNLINK``, unless a receiver
    listens to ``session_ended``: then ``GETDEL`` each, to tell it whose session each was."""
    if not signals.session_ended.has_listeners():
        return unlink(client, names)
    blobs = execute(client, [Call.command("GETDEL", name) for name in names])
    prefix = len(keys.session_name(""))
    gone: list[tuple[str | None, str]] = []
    for name, blob in zip(names, blobs, strict=True):
        if blob is None:
            continue
        text = name.decode() if isinstance(name, bytes) else name
        gone.append((_owner(text, blob), text[prefix:]))
    signals.ended(gone, signals.PURGE)
    return len(gone)


def _owner(name: str, blob: bytes) -> str | None:
    """The signed-in user of a deleted session's record, or None (anonymous, or unreadable)."""
    try:
        _, data = decode(name, blob)
    except codec.InvalidRecord:
        return None
    user = data.get(SESSION_KEY)
    return None if user is None else str(user)


#: ``ZPOPMIN`` count that empties any index in one call.
_POP_ALL = str(2**31 - 1)


def _members(popped: list[Any]) -> Iterator[bytes]:
    """Members of ``ZPOPMIN`` replies: flat [member, score, ...] (RESP2) or pairs (RESP3)."""
    for reply in popped:
        if reply and isinstance(reply[0], list):
            yield from (pair[0] for pair in reply)
        else:
            yield from reply[0::2]


def _with_progress(pattern: str, progress: Progress | None) -> Iterator[Scanned]:
    seen = 0
    for step in scan_batches(get_client(), pattern, SCAN_COUNT):
        yield step
        seen += len(step.names)
        if progress is not None:
            progress(step.done, seen)


def purge_matching(
    select: Callable[[Seen, float], bool], *, dry_run: bool, progress: Progress | None = None
) -> int:
    """End the sessions that ``select(seen, now)`` picks; return how many were (or would be)
    ended. Each is deleted only if unchanged since it was read; a signed-in one also leaves
    its user's index."""
    prefix = len(keys.session_name(""))
    ended = 0
    for node, batch in _walk(progress):
        now = time.time()
        chosen = [seen for seen in batch if select(seen, now)]
        if not chosen:
            continue
        if dry_run:
            ended += len(chosen)
            continue
        calls = [DELETE_IF_UNCHANGED.call(seen.name.decode(), seen.header.mac) for seen in chosen]
        replies = execute(node, calls)
        ended += sum(1 for reply in replies if reply != 0)
        unindex: dict[str, list[str]] = {}
        gone: list[tuple[str | None, str]] = []
        for seen, reply in zip(chosen, replies, strict=True):
            if reply == 0:
                continue  # changed or gone since the scan: not ended here
            name = seen.name.decode()
            user = _owner(name, reply) if isinstance(reply, bytes) else None
            if user is not None:
                unindex.setdefault(user, []).append(name[prefix:])
            gone.append((user, name[prefix:]))
        if unindex:
            execute(
                get_client(),
                [
                    Call.command("ZREM", keys.user_index_name(user), *sids)
                    for user, sids in unindex.items()
                ],
            )
        signals.ended(gone, signals.PURGE)
    return ended


def anonymous(seen: Seen, now: float) -> bool:
    """Selects sessions without a signed-in user."""
    return not seen.header.until


def idle_over(seconds: int) -> Callable[[Seen, float], bool]:
    """Selects sessions unused for more than ``seconds`` (see ``last_used``)."""
    return lambda seen, now: now - last_used(seen.header, seen.pttl, now) > seconds


def older_than(seconds: int) -> Callable[[Seen, float], bool]:
    """Selects sessions created more than ``seconds`` ago."""
    return lambda seen, now: now - seen.header.created > seconds


def purge_user(user: Any, *, dry_run: bool) -> int:
    """End every session of ``user``; return how many (time proportional to their number)."""
    if dry_run:
        return len(user_sessions(user))
    return end_user_sessions(user, reason=signals.PURGE)


def purge_key(session_key: str, *, dry_run: bool) -> int:
    """End the session whose cookie value is ``session_key``: 1, or 0 if there is none."""
    found = find_session(session_key)
    if found is None:
        return 0
    info, _ = found
    if dry_run:
        return 1
    calls = [Call.command("UNLINK", keys.session_name(info.id))]
    if info.user_id is not None:
        calls.append(Call.command("ZREM", keys.user_index_name(info.user_id), info.id))
    ended = int(execute(get_client(), calls)[0])
    signals.ended([(info.user_id, info.id)] * ended, signals.PURGE)
    return ended
