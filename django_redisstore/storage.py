"""The flows that read and write one session's record: what ``SessionStore`` runs.

Private: no stable API. Each operation is written once, as a *flow* (see ``flows``): a generator
that yields batches of Redis calls and receives their replies, driven sync or async by the store.
The flows keep the store's record state (``_version``, ``_base``, ``_created``, ``_user``,
``_until``, ``_fresh``: see ``SessionStore._forget_record``) up to date.

Round trips: reading a session is one (``GET``, or a script that also slides its TTL), saving a
change is one (a conditional write, plus index upkeep in the same pipeline), creating is one
(``SET NX``).
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from time import monotonic  # bounds retries; tests replace ``time`` to move the clock
from typing import TYPE_CHECKING, Any

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, UpdateError

from . import codec, expiry, keys, merge, signals
from .conf import get as snapshot
from .exceptions import RedisStoreError, SaveConflict, SessionTooLarge, TooManySessions
from .flows import Announce, Call, Flow, Pause
from .scripts import CLAIM, CREATE, INDEX_ADD, LOAD_SLIDING, SAVE, TOUCH

if TYPE_CHECKING:
    from .session import SessionStore

logger = logging.getLogger("django_redisstore")
security_logger = logging.getLogger("django.security.SuspiciousSession")

#: A version (MAC) that no record has. A store that lost the race to move a rotated session
#: under today's name sets it: its save then gets the current record back and merges with it.
UNKNOWN_VERSION = b"\x00"

#: What a record under a fallback secret's name is replaced with while it moves to today's name
#: (``scripts.CLAIM``): shorter than a header, so no tool takes it for a session. It expires on
#: its own if the mover dies before its write (the session is then lost, never brought back).
MOVING = b"moving"
_MOVING_TTL_MS = 10_000
#: A request that finds a move under way reads again after these pauses (1 ms doubling to 0.5 s,
#: about 1 s in all): the mover's write is one round trip away, unless its process stalls or
#: died. Past them, the session reads as gone.
_MOVE_WAITS = tuple(0.001 * 2**n for n in range(10))

Found = tuple[codec.Record, dict[str, Any]]


# Load: fetch, rotation, deadline, slide --------------------------------------------------------


def load_flow(store: SessionStore) -> Flow[dict[str, Any]]:
    """Read the store's session: its data, or {} when there is none (the key is then dropped)."""
    session_key = store.session_key
    if session_key is None:  # no key, or one that failed validation: nothing to look up
        store._forget_record()
        return {}
    now = time.time()
    settings = snapshot()
    sid = store._session_id(session_key)
    name = keys.session_name(sid)
    call = LOAD_SLIDING.call(name, repr(now)) if settings.slides else Call.command("GET", name)
    (blob,) = yield [call]
    secret = settings.secret_key
    store._forget_record()
    if blob is None and len(settings.secrets) > 1:
        found, secret, name = yield from _find_rotated(store, session_key, name)
    else:
        found = _verified(store, name, blob, secret)
    if found is None:
        store._session_key = None
        return {}
    record, data = found
    store._remember(record, data)
    end = expiry.deadline(record.created, settings.ABSOLUTE_TIMEOUT)
    if end is not None and now >= end:
        # Past its absolute lifetime (its TTL says otherwise only when the setting was lowered
        # since it was written): never served, and gone for good.
        user = store._user
        if (yield delete_calls(name, user))[0]:
            yield Announce(((user, name.rsplit(":", 1)[1]),), signals.TIMEOUT)
        store._forget_record()
        store._session_key = None
        return {}
    if secret != settings.secret_key:
        yield from _move_to_current_secret(store, data, now, name)
    elif settings.slides:
        yield from _after_slide(store, record, data, (sid, blob), now, end)
    return data


def _verified(store: SessionStore, name: str, blob: bytes | None, secret: str) -> Found | None:
    """The record and data in ``blob``, or None (nothing there, or a record that fails)."""
    if blob is None:
        return None
    try:
        return codec.read(name, blob, secret, store.serializer)
    except codec.InvalidRecord as e:
        security_logger.warning("Session data under %s failed verification: %s", name, e)
        return None


def _find_rotated(
    store: SessionStore, session_key: str, current: str
) -> Flow[tuple[Found | None, str, str]]:
    """After ``SECRET_KEY`` rotation: the session under a fallback secret's name, claimed for
    its move to today's name (``current``), or the one a parallel request moved there; with
    the secret and the name it was found under.

    The move claims the old record first (``scripts.CLAIM``, conditional on the version read)
    and writes today's name only once it holds the claim: two keys cannot change together on
    Cluster, and writing the new name first would let a request that read the old record
    before a parallel move and logout bring the session back. A request that loses the claim,
    or finds the marker of a move under way, reads again after a short pause until the session
    is under today's name, or gone.
    """
    today, *fallbacks = snapshot().secrets
    names = [keys.session_name(keys.session_id(session_key, s)) for s in fallbacks]
    for pause in (*_MOVE_WAITS, None):
        *blobs, moved = yield [Call.command("GET", name) for name in [*names, current]]
        if moved is not None:
            return _verified(store, current, moved, today), today, current
        moving = False
        for secret, name, blob in zip(fallbacks, names, blobs, strict=True):
            if blob == MOVING:
                moving = True
                continue
            found = _verified(store, name, blob, secret)
            if found is not None:
                (claimed,) = yield [CLAIM.call(name, found[0].mac, MOVING, _MOVING_TTL_MS)]
                if claimed:
                    return found, secret, name
                moving = True  # a parallel request claimed it first
        if not moving or pause is None:
            break
        yield Pause(pause)
    return None, today, current


def _move_to_current_secret(
    store: SessionStore, data: dict[str, Any], now: float, name: str
) -> Flow[None]:
    """A record claimed under a name derived from a fallback secret: write it under today's
    (and drop the claim's marker and the old index entry in the same round trip)."""
    try:
        yield from write_flow(store, data, now, create=True, retire=(name, store._user))
    except CreateError:  # today's name is taken (by an older version's move): merge with it
        store._version = UNKNOWN_VERSION


def _after_slide(
    store: SessionStore,
    record: codec.Record,
    data: dict[str, Any],
    stored: tuple[str, bytes],
    now: float,
    end: int | None,
) -> Flow[None]:
    """The read slid the TTL: remember it, extend the index entry if the slide passed its
    score, and have the cookie re-sent with its new ``Max-Age``. ``stored``: the session's id
    and the bytes the read found."""
    store._fresh = True
    if not record.idle:
        return
    if store._user and expiry.slide_reaches_index(record.until, record.idle, now, end):
        yield from _touch_flow(store, *stored, record.idle, now)
    if expiry.persistent(data, snapshot().expire_at_browser_close):
        # SessionMiddleware re-sends the cookie (with the new Max-Age) for a modified session
        # only: ``modified`` here means "re-send the cookie", not "the data changed". The save
        # it then calls writes nothing unless the data changed (see ``save_flow``).
        store.modified = True


def _touch_flow(store: SessionStore, sid: str, blob: bytes, age: int, now: float) -> Flow[None]:
    """Extend the TTL cap and index entry of the record ``blob`` that this store just read."""
    until = store._cap(expiry.index_until(now, age, snapshot().INDEX_HEADROOM), now)
    name = keys.session_name(sid)
    tail, mac = codec.reseal(name, blob, snapshot().secret_key, until)
    replies = yield [
        TOUCH.call(name, age * 1000, store._version, tail),
        INDEX_ADD.call(keys.user_index_name(store._user or ""), sid, until, repr(now)),
    ]
    if replies[0]:
        store._version, store._until = mac, until


# Save: plan the index calls, pack the record, merge and back off ------------------------------


def save_flow(store: SessionStore, data: dict[str, Any], must_create: bool) -> Flow[None]:
    if (
        store._fresh
        and not must_create
        and (not store.modified or codec.encode_payload(data, store.serializer) == store._base)
    ):
        return  # the read already slid the TTL and the data is as read: no round trip
    yield from write_flow(store, data, time.time(), create=must_create)


#: What a write of some session data needs besides the data (a plain tuple: one per save):
#: the TTL in seconds (0 or less: the session is over), ``idle`` (the seconds a sliding read may
#: extend the TTL to; 0: it does not slide), the user, ``until`` (the TTL cap and the index
#: entry's score; 0: none), the index calls that go with the write, and whether the last of
#: them files a sign-in under ``REDISSTORE_MAX_SESSIONS_PER_USER`` (its reply then matters).
_Plan = tuple[int, int, str | None, int, list[Call], bool]


def _plan(
    store: SessionStore,
    data: dict[str, Any],
    now: float,
    sid: str,
    create: bool,
    lifetime: int | None,
    limit: bool,
) -> _Plan:
    """The TTL and ``until`` of the record holding ``data``, and the index calls to go with it."""
    expires = data.get("_session_expiry")
    age = store.get_expiry_age(expiry=expires)
    ttl = age if lifetime is None else lifetime
    user = codec.user_of(data)
    calls: list[Call] = []
    if store._user and store._user != user and not create:
        calls.append(Call.command("ZREM", keys.user_index_name(store._user), sid))
    until: float = 0
    limited = False
    if user and ttl > 0:
        until = store._until if user == store._user and not create else 0
        if now + ttl > until:
            settings = snapshot()
            until = store._cap(expiry.index_until(now, ttl, settings.INDEX_HEADROOM), now)
            # A session new to its user's index (a sign-in; not a cycle_key() or an import)
            # is counted against the limit.
            limited = limit and user != store._user and settings.MAX_SESSIONS_PER_USER is not None
            args = _limit_args(settings) if limited else ()
            calls.append(INDEX_ADD.call(keys.user_index_name(user), sid, until, repr(now), *args))
    idle = 0 if isinstance(expires, (datetime, str)) else age
    # The absolute lifetime caps every slide.
    return ttl, idle, user, store._cap(until, now), calls, limited


def _limit_args(settings: Any) -> tuple[int, str, str]:
    """INDEX_ADD's arguments for the per-user limit: N, the policy, and the prefix under which
    the script deletes the sessions it ends ('' on a Cluster: they live in other slots)."""
    prefix = "" if settings.CLUSTER_NODES else settings.session_prefix
    return settings.MAX_SESSIONS_PER_USER, settings.MAX_SESSIONS_POLICY, prefix


def _pack(
    store: SessionStore, name: str, data: dict[str, Any], now: float, idle: int, until: int
) -> tuple[bytes, bytes, bytes]:
    """The serialized payload, the record to store and its MAC; refuses a session too large."""
    settings = snapshot()
    payload = codec.encode_payload(data, store.serializer)
    if settings.MAX_SIZE is not None and len(payload) > settings.MAX_SIZE:
        raise SessionTooLarge(
            f"the session {name} is {len(payload)} bytes serialized, over "
            f"REDISSTORE_MAX_SIZE ({settings.MAX_SIZE}); nothing was written"
        )
    blob, mac = codec.pack(
        name,
        payload,
        secret=settings.secret_key,
        created=store._created or now,
        saved=now,
        idle=idle,
        until=until,
        compress_min_size=settings.COMPRESS_MIN_SIZE,
    )
    return payload, blob, mac


def write_flow(
    store: SessionStore,
    data: dict[str, Any],
    now: float,
    *,
    create: bool,
    retire: tuple[str, str | None] | None = None,
    lifetime: int | None = None,
    limit: bool = True,
    exclusive: bool = False,
) -> Flow[None]:
    """Write ``data``: a new record (``create``) or a conditional save of the one read.

    ``retire`` names a record (and its user) to delete in the same round trip: the old key of
    ``cycle_key()``. ``lifetime`` (seconds) replaces the expiry age as the record's TTL: a
    session imported from another engine keeps the time it had left there. On a conflicting
    save, merge and retry; a record that is gone is never brought back. ``limit=False`` files a
    signed-in session without counting it against ``REDISSTORE_MAX_SESSIONS_PER_USER`` (an
    import is no sign-in). A create that finds its very record already there (redis-py re-sent
    it after a connection broke) has succeeded, unless ``exclusive``: an import run twice in
    one second writes the same bytes, and the second must count the session as already there.
    """
    session_key = store.session_key
    assert session_key is not None
    sid = store._session_id(session_key)
    name = keys.session_name(sid)
    extra = delete_calls(*retire) if retire else []
    ours = data
    base: dict[str, Any] | None = None  # what we read, and what we changed it into:
    mine: dict[str, Any] = {}  # both decoded only if someone else wrote meanwhile
    bounds = _Bounds(name)
    for attempt in range(expiry.SAVE_ATTEMPTS):
        ttl, idle, user, until, index_calls, limited = _plan(
            store, ours, now, sid, create, lifetime, limit
        )
        if ttl <= 0:  # expired already: a session in the past is a session gone
            # Its index entry goes with it (under the user it was read with; a user change
            # adds nothing to index for a record that is not written).
            yield [*delete_calls(name, store._user), *extra]
            store._forget_record()
            return
        bounds.attempt_started = monotonic()
        payload, blob, mac = _pack(store, name, ours, now, idle, until)
        if attempt:
            bounds.check_bytes(len(blob), attempt)
        if create:
            write = CREATE.call(name, blob, ttl * 1000)
        else:
            # After a conflict, pause first, then read the record to merge with: read before
            # the pause, it would be stale by the next try.
            write = SAVE.call(name, store._version, blob, ttl * 1000, int(not attempt))
        replies = yield [write, *index_calls, *extra]
        reply = replies[0]
        extra = []
        if (
            limited
            and replies[len(index_calls)] == 0
            and (reply == 1 or (create and reply is not None))
        ):
            yield from _refused(store, data, name, user, index_calls[-1])
        elif limited:
            yield from _end_beyond_limit(user, replies[len(index_calls)])
        if _accepted(store, reply, create, exclusive):
            store._version, store._base = mac, payload
            store._user, store._until = user, until
            store._created = store._created or now
            if ours is not data:
                store._session_cache = ours
            return
        bounds.moved += len(blob) + len(reply)  # ours sent, theirs (or its MAC) received
        if attempt:
            yield Pause(bounds.next_pause(attempt))
            (reply,) = yield [Call.command("GET", name)]
            if reply is None:  # gone while we paused: never brought back
                store._forget_record()
                raise UpdateError
            bounds.moved += len(reply)
        else:
            bounds.next_pause(attempt)
        if base is None:
            base, mine = _as_serialized(store, data)
        ours = _merge_into(store, name, reply, base, mine)
        now = time.time()
    raise bounds.give_up(f"{expiry.SAVE_ATTEMPTS} conflicting writes", expiry.SAVE_ATTEMPTS)


class _Bounds:
    """What one save's conflict retries have spent, against ``REDISSTORE_SAVE_DEADLINE``
    (seconds) and ``REDISSTORE_SAVE_BUDGET`` (bytes sent to Redis and received from it by
    its refused attempts, plus the next attempt's record)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = self.attempt_started = monotonic()
        self.moved = 0
        settings = snapshot()
        self.deadline, self.budget = settings.SAVE_DEADLINE, settings.SAVE_BUDGET

    def check_bytes(self, size: int, attempt: int) -> None:
        if self.moved + size > self.budget:
            raise self.give_up(f"REDISSTORE_SAVE_BUDGET ({self.budget} bytes)", attempt)

    def next_pause(self, attempt: int) -> float:
        """The pause before retrying after conflicting attempt ``attempt``: none after the
        first; then random, growing, and scaled to how long this attempt took. Conflicting
        again means a request that reads and saves in a tight loop would keep winning: the
        pause (full jitter) lets the others through."""
        now = monotonic()
        took = now - self.attempt_started  # pack, send, merge: what one attempt costs now
        left = self.deadline - (now - self.started)
        if left <= 0:
            raise self.give_up(f"REDISSTORE_SAVE_DEADLINE ({self.deadline:g} s)", attempt + 1)
        pause = random.uniform(0, expiry.backoff_limit(attempt, took)) if attempt else 0.0
        return min(pause, left)

    def give_up(self, bound: str, attempts: int) -> SaveConflict:
        message = (
            f"gave up saving {self.name} past {bound}: {attempts} conflicting writes in "
            f"{monotonic() - self.started:.2f} s moved {self.moved} bytes through Redis; "
            "nothing of this save was written"
        )
        logger.warning("%s", message)
        return SaveConflict(message)


def _end_beyond_limit(user: str | None, outcome: Any) -> Flow[None]:
    """After a sign-in that the ``end_oldest`` policy made room for: delete the sessions the
    index script took out of the index (unless it deleted them itself), then announce them."""
    if not isinstance(outcome, list):
        return  # 1: under the limit; 0: a refusal of a write that did not happen either
    deleted, ids = outcome
    ended = [sid.decode() for sid in ids]
    if not deleted and ended:  # a Cluster: one more round trip, only when the limit is hit
        replies = yield [Call.command("DEL", keys.session_name(sid)) for sid in ended]
        ended = [sid for sid, reply in zip(ended, replies, strict=True) if reply]
    if ended:
        yield Announce(tuple((user, sid) for sid in ended), signals.LIMIT)


def _refused(
    store: SessionStore, data: dict[str, Any], name: str, user: str | None, index_add: Call
) -> Flow[None]:
    """A sign-in the ``refuse`` policy turned down, after its record was written: unless the
    user's index held entries of sessions that are gone (verified as ``user_sessions`` does, and
    pruned), which make room for it, delete the record and leave the session anonymous."""
    from .index import sessions_flow

    _, pruned = yield from sessions_flow([user or ""])
    if pruned:
        (outcome,) = yield [index_add]
        if outcome != 0:
            yield from _end_beyond_limit(user, outcome)
            return
    yield [Call.command("DEL", name)]
    for key in (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY):
        data.pop(key, None)
    store._forget_record()
    store._session_key = None  # the next save stores what is left under a new key
    store.modified = True
    raise TooManySessions(
        f"user {user} has REDISSTORE_MAX_SESSIONS_PER_USER ({snapshot().MAX_SESSIONS_PER_USER}) "
        "live sessions already; the sign-in was refused (REDISSTORE_MAX_SESSIONS_POLICY "
        "'refuse')"
    )


def _accepted(store: SessionStore, reply: Any, create: bool, exclusive: bool = False) -> bool:
    """Whether the write went through (False: someone else wrote; ``reply`` is their record).

    Raises ``CreateError`` when the key of a new session is taken, ``UpdateError`` when the
    session to save is gone.
    """
    if create and (reply is None or (exclusive and reply == 2)):
        raise CreateError
    if not create and reply == 0:
        store._forget_record()
        raise UpdateError
    return create or reply == 1


def _as_serialized(
    store: SessionStore, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the store read and what it holds now, both through the serializer, for a merge
    (a tuple and the list it is stored as compare equal)."""
    serializer = store.serializer
    base = codec.decode_payload(store._base, serializer) if store._base is not None else {}
    return base, codec.decode_payload(codec.encode_payload(data, serializer), serializer)


def _merge_into(
    store: SessionStore, name: str, current: bytes, base: dict[str, Any], mine: dict[str, Any]
) -> dict[str, Any]:
    """Our changes (``base`` to ``mine``) on top of ``current``, which someone else wrote."""
    try:
        record, theirs = codec.read(name, current, snapshot().secret_key, store.serializer)
    except codec.InvalidRecord as e:
        security_logger.warning("Session data under %s failed verification: %s", name, e)
        store._version = codec.version_of(current)  # nothing to merge with: replace it
        return mine
    store._remember(record, theirs)
    return merge.merge(base, mine, theirs)


# Create, import, delete, exists ----------------------------------------------------------------

#: A fresh key colliding with a live one is a 1 in 36**32 event; a few tries make a collision
#: loop impossible without ever spinning thousands of times when Redis misbehaves.
_CREATE_ATTEMPTS = 3


def create_flow(store: SessionStore, data: dict[str, Any], retire: str | None) -> Flow[None]:
    # The session being retired (cycle_key's old key) is deleted in the same round trip.
    retired = (keys.session_name(keys.session_id(retire)), store._user) if retire else None
    store._created = 0.0
    for _ in range(_CREATE_ATTEMPTS):
        store._session_key = store._get_new_session_key()
        try:
            yield from write_flow(store, data, time.time(), create=True, retire=retired)
        except CreateError:
            retired = None  # deleted with the first attempt
            continue
        store._session_cache = data
        store.modified = True
        return
    raise RedisStoreError("could not find an unused session key; is Redis answering right?")


def import_flow(store: SessionStore, data: dict[str, Any], lifetime: int | None) -> Flow[bool]:
    """Store ``data`` under the store's key for ``lifetime`` seconds (None: its expiry age),
    unless a session already lives there: False then (``sessions import`` is idempotent)."""
    try:
        yield from write_flow(
            store, data, time.time(), create=True, lifetime=lifetime, limit=False, exclusive=True
        )
    except CreateError:
        return False
    return True


def delete_calls(name: str, user: str | None) -> list[Call]:
    """Delete the session stored under ``name`` and, if ``user`` is given, its index entry."""
    calls = [Call.command("DEL", name)]
    if user:
        sid = name.rsplit(":", 1)[1]
        calls.append(Call.command("ZREM", keys.user_index_name(user), sid))
    return calls


def delete_flow(store: SessionStore, session_key: str | None) -> Flow[None]:
    if session_key is None:
        session_key = store.session_key
    if not keys.is_valid_session_key(session_key):
        return
    assert session_key is not None
    sid = keys.session_id(session_key)
    name = keys.session_name(sid)
    if session_key == store.session_key and store._version:
        # This store read the record: its user (if any) is known, one round trip.
        found = store._user
        if not (yield delete_calls(name, found))[0]:
            found = None  # gone already: nothing ended here
    else:
        # A session this store never read (``delete(other_key)``): take it out with GETDEL and,
        # if it was signed in, its index entry with a second trip. Without that the entry would
        # linger until its score passed.
        (blob,) = yield [Call.command("GETDEL", name)]
        found = None if blob is None else _user_in(store, name, blob)
        if found:
            yield delete_calls(name, found)[1:]
    if found:  # a signed-in session that was there: logout() or flush() ended it
        yield Announce(((found, sid),), signals.LOGOUT)
    if session_key == store.session_key:
        store._forget_record()


def _user_in(store: SessionStore, name: str, blob: bytes) -> str | None:
    """The user a stored record belongs to, or None (anonymous, or not a valid record)."""
    try:
        return codec.user_of(codec.read(name, blob, snapshot().secret_key, store.serializer)[1])
    except codec.InvalidRecord:
        return None


def exists_flow(session_key: str | None) -> Flow[bool]:
    if not keys.is_valid_session_key(session_key):
        return False
    assert session_key is not None
    (found,) = yield [Call.command("EXISTS", keys.session_name(keys.session_id(session_key)))]
    return bool(found)
