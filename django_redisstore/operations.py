"""Bulk operations on this prefix's sessions: what ``manage.py sessions inspect`` and ``purge``
run. The command only parses arguments and formats what these functions return.

Private: no stable API.

Everything streams: the keyspace is walked with ``SCAN ... MATCH <prefix>:s:* COUNT 1000``
(never ``KEYS``), each reply is handled with a few pipelines and then forgotten, so memory
stays flat however many sessions there are. Only keys of this prefix are read or deleted.

A walk reads each record whole (``GET``) with its ``PTTL``, and verifies and decodes it as a
request would: a session is signed in when its data names a user (``_auth_user_id``), whatever
the timeouts put in its header. A purge that selects sessions deletes each with
``scripts.DELETE_IF_UNCHANGED``: a session that a request wrote after the scan read it was in
use, and is left alone.
"""

from __future__ import annotations

import bisect
import heapq
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from redis.exceptions import ResponseError

from . import codec, keys, signals
from .clients import get_client, is_cluster, translate_error
from .exceptions import WrongType
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
    with_ttl,
)
from .scripts import DELETE_IF_UNCHANGED, PURGE

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
    """One session as a walk sees it: its key, header, remaining TTL (ms) and its user's id
    (``_auth_user_id``, None when nobody is signed in)."""

    name: bytes
    header: codec.Header
    pttl: int
    user: str | None


def _walk(
    progress: Progress | None = None, *, memory: list[int] | None = None
) -> Iterator[tuple[Any, list[Seen], int]]:
    """This prefix's sessions, a ``SCAN`` step at a time: the node they live on, each verified
    session's header, TTL and user, and how many keys of the step are not sessions.

    A key that is not a record this site can read (another type, a string in another format, a
    record signed with an unknown secret) is counted as skipped, never returned: nothing is ever
    done to it. Keys that vanish between the scan and the read are neither. ``memory``, when
    given, receives the ``MEMORY USAGE`` of one session in ``MEMORY_SAMPLE_EVERY``.
    """
    seen = 0
    for node, names, done in scan_batches(get_client(), keys.session_pattern(), SCAN_COUNT):
        batch: list[Seen] = []
        skipped = 0
        if names:
            packed = [_READ_RECORD % (len(name), name, len(name), name) for name in names]
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
            for name, blob, pttl in zip(names, replies[0:end:2], replies[1:end:2], strict=True):
                if blob is None or pttl == -2:
                    continue  # gone since the scan
                try:
                    record, data = decode(name.decode(), _record(node, blob))
                except codec.InvalidRecord:
                    skipped += 1  # not a session of ours: never counted, never deleted
                    continue
                header = codec.Header(
                    record.created, record.saved, record.idle, record.until, record.mac
                )
                batch.append(Seen(name, header, pttl, codec.user_of(data)))
            if memory is not None:
                memory += [m for m in replies[end:] if isinstance(m, int)]
        yield node, batch, skipped
        if progress is not None:
            progress(done, seen)


def _wrong_type(node: Any, reply: Any) -> bool:
    """Whether ``reply`` is Redis's WRONGTYPE: the key holds another type than the command
    takes, so it is not one of the engine's. Any other error reply is raised."""
    if not isinstance(reply, ResponseError):
        return False
    error = translate_error(node, reply)
    if isinstance(error, WrongType):
        return True
    raise error


def _record(node: Any, reply: Any) -> bytes:
    """A ``GET`` reply as bytes; WRONGTYPE (a key of another type) as an invalid record."""
    if _wrong_type(node, reply):
        raise codec.InvalidRecord("not a string")
    return reply  # type: ignore[no-any-return]


#: ``GET <name>`` and ``PTTL <name>`` in the Redis protocol, for ``% (len, name) * 2``:
#: formatting one template per session is several times faster than packing two commands.
_READ_RECORD = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n"
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
    #: Keys under the prefix that are not sessions (or user indexes) of this engine.
    skipped: int = 0


def summarize(progress: Progress | None = None) -> Summary:
    """Count, classify and measure every session of this prefix, then rank users by sessions.

    Sessions are counted from the records (signed in = the data names a user); users and
    their session counts from the per-user index, and the top users' counts are then verified
    session by session (which prunes their stale entries).
    """
    summary = Summary()
    now = time.time()
    memory: list[int] = []
    oldest = newest = None
    for _, batch, skipped in _walk(progress, memory=memory):
        summary.skipped += skipped
        for seen in batch:
            header = seen.header
            summary.total += 1
            if seen.user is not None:
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
    summary.users, top, skipped = _count_users(now)
    summary.skipped += skipped
    if top:
        found, _ = run(sessions_flow([user for _, user in top]))
        ranked = sorted(((len(infos), user) for user, infos in found.items()), reverse=True)
        summary.top_users = [(user, count) for count, user in ranked if count]
    return summary


def _count_users(now: float) -> tuple[int, list[tuple[int, str]], int]:
    """Users with an entry that has not passed, the ``TOP_USERS`` with most entries, and how
    many keys under ``<prefix>:u:*`` are not indexes (not sorted sets: skipped)."""
    start = len(keys.user_index_name(""))
    users = skipped = 0
    top: list[tuple[int, str]] = []
    for node, names, _ in scan_batches(get_client(), keys.user_index_pattern(), SCAN_COUNT):
        counts = execute_plain(node, [("ZCOUNT", n, repr(now), "+inf") for n in names])
        for name, count in zip(names, counts, strict=True):
            if _wrong_type(node, count):
                skipped += 1
            elif count:
                users += 1
                entry = (count, name.decode()[start:])
                if len(top) < TOP_USERS:
                    heapq.heappush(top, entry)
                else:
                    heapq.heappushpop(top, entry)
    return users, sorted(top, reverse=True), skipped


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


class Purged(NamedTuple):
    """What a purge ended (or, in a dry run, would end), and the keys under the prefix it left
    alone because they are not the engine's sessions or user indexes."""

    sessions: int
    skipped: int = 0


def purge_all(*, dry_run: bool, progress: Progress | None = None) -> Purged:
    """End every session of this prefix and drop its user indexes.

    One walk over both kinds of key, each step handled by ``scripts.PURGE`` on the server: a
    session key is deleted only when it holds a record (a string that starts with the format
    version and is at least a header long), an index only when it is a sorted set; any other
    key is counted as skipped and left as it is. An index is emptied with one atomic
    ``ZPOPMIN`` and the sessions it listed are deleted with it: a login racing the purge either
    is listed there (and ends), or files its session in a fresh index. So no session survives
    the purge without its index entry, whichever of the two keys the walk meets first.
    """
    client = get_client()
    cluster = is_cluster(client)
    pattern = keys.session_pattern() if dry_run else keys.engine_pattern()
    ended = skipped = 0
    for node, names, _ in _with_progress(pattern, progress):
        while names:
            count, left, listed = _purge_step(node, names, dry_run, cluster)
            ended, skipped = ended + count, skipped + left
            names = [keys.session_name(sid.decode()).encode() for sid in listed]
            node = client  # listed sessions live anywhere on a cluster
    return Purged(ended, skipped)


def _purge_step(
    node: Any, names: list[bytes], dry_run: bool, cluster: bool
) -> tuple[int, int, list[bytes]]:
    """``scripts.PURGE`` on ``names``: in one call on one server, one call per key on a
    cluster (a script's keys must share a slot there)."""
    args = (
        keys.session_name(""),
        bytes((codec.VERSION,)),
        codec.HEADER_SIZE,
        _POP_ALL,
        int(dry_run),
        int(not dry_run and signals.session_ended.has_listeners()),
    )
    groups = [[name] for name in names] if cluster else [names]
    calls = [Call(("EVALSHA", PURGE.sha, len(g), *g, *args), PURGE) for g in groups]
    ended = skipped = 0
    listed: list[bytes] = []
    gone: list[tuple[str | None, str]] = []
    prefix = len(keys.session_name(""))
    for count, left, ids, records in execute(node, calls):
        ended, skipped = ended + count, skipped + left
        listed += ids
        for name, blob in zip(records[::2], records[1::2], strict=True):
            gone.append((_owner(name.decode(), blob), name.decode()[prefix:]))
    signals.ended(gone, signals.PURGE)
    return ended, skipped, listed


def _owner(name: str, blob: bytes) -> str | None:
    """The signed-in user of a deleted session's record, or None (anonymous, or unreadable)."""
    try:
        _, data = decode(name, blob)
    except codec.InvalidRecord:
        return None
    return codec.user_of(data)


#: ``ZPOPMIN`` count that empties any index in one call.
_POP_ALL = str(2**31 - 1)


def _with_progress(pattern: str, progress: Progress | None) -> Iterator[Scanned]:
    seen = 0
    for step in scan_batches(get_client(), pattern, SCAN_COUNT):
        yield step
        seen += len(step.names)
        if progress is not None:
            progress(step.done, seen)


def purge_matching(
    select: Callable[[Seen, float], bool], *, dry_run: bool, progress: Progress | None = None
) -> Purged:
    """End the sessions that ``select(seen, now)`` picks. Each is deleted only if unchanged
    since it was read; a signed-in one also leaves its user's index."""
    prefix = len(keys.session_name(""))
    ended = skipped = 0
    for node, batch, left in _walk(progress):
        skipped += left
        now = time.time()
        chosen = [seen for seen in batch if select(seen, now)]
        if not chosen:
            continue
        if dry_run:
            ended += len(chosen)
            continue
        calls = [DELETE_IF_UNCHANGED.call(seen.name.decode(), seen.header.mac) for seen in chosen]
        replies = execute(node, calls)
        ended += sum(replies)
        unindex: dict[str, list[str]] = {}
        gone: list[tuple[str | None, str]] = []
        for seen, deleted in zip(chosen, replies, strict=True):
            if not deleted:
                continue  # changed or gone since the scan: not ended here
            sid = seen.name.decode()[prefix:]
            if seen.user is not None:
                unindex.setdefault(seen.user, []).append(sid)
            gone.append((seen.user, sid))
        if unindex:
            execute(
                get_client(),
                [
                    Call.command("ZREM", keys.user_index_name(user), *sids)
                    for user, sids in unindex.items()
                ],
            )
        signals.ended(gone, signals.PURGE)
    return Purged(ended, skipped)


def anonymous(seen: Seen, now: float) -> bool:
    """Selects sessions without a signed-in user (whose data names no user)."""
    return seen.user is None


def idle_over(seconds: int) -> Callable[[Seen, float], bool]:
    """Selects sessions unused for more than ``seconds`` (see ``last_used``)."""
    return lambda seen, now: now - last_used(seen.header, seen.pttl, now) > seconds


def older_than(seconds: int) -> Callable[[Seen, float], bool]:
    """Selects sessions created more than ``seconds`` ago."""
    return lambda seen, now: now - seen.header.created > seconds


def purge_user(user: Any, *, dry_run: bool) -> Purged:
    """End every session of ``user`` (time proportional to their number)."""
    if dry_run:
        return Purged(len(user_sessions(user)))
    return Purged(end_user_sessions(user, reason=signals.PURGE))


def purge_key(session_key: str, *, dry_run: bool) -> Purged:
    """End the session whose cookie value is ``session_key``: 1, or 0 if there is none."""
    found = find_session(session_key)
    if found is None:
        return Purged(0)
    info, _ = found
    if dry_run:
        return Purged(1)
    calls = [Call.command("UNLINK", keys.session_name(info.id))]
    if info.user_id is not None:
        calls.append(Call.command("ZREM", keys.user_index_name(info.user_id), info.id))
    ended = int(execute(get_client(), calls)[0])
    signals.ended([(info.user_id, info.id)] * ended, signals.PURGE)
    return Purged(ended)
