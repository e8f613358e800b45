"""The session engine: ``SESSION_ENGINE = "django_redisstore.session"``.

Every operation is written once, as a *flow*: a generator that yields batches of Redis calls
(``scripts.Call``) and receives their replies. ``connection.run`` drives a flow with the sync
client and ``connection.arun`` with the async one, so the sync and async APIs share all but the
socket.

Round trips: reading a session is one (``GET``, or a script that also slides its TTL), saving a
change is one (a conditional write, plus index upkeep in the same pipeline), creating is one
(``SET NX``). Nothing connects until a session is actually read or written.
"""

from __future__ import annotations

import logging
import math
import random
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import django
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import (
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.signals import setting_changed
from django.core.signing import JSONSerializer
from django.utils import timezone as django_timezone
from django.utils.module_loading import import_string
from redis.exceptions import ResponseError

from . import codec, keys, merge, serializers
from .conf import conf
from .connection import Flow, arun, run
from .exceptions import ConnectionInterrupted, RedisStoreError, SessionTooLarge
from .scripts import INDEX_ADD, LOAD_SLIDING, SAVE, TOUCH, Call, Pause

security_logger = logging.getLogger("django.security.SuspiciousSession")
logger = logging.getLogger("django_redisstore")

#: A fresh key colliding with a live one is a 1 in 36**32 event; a few tries make a collision
#: loop impossible without ever spinning thousands of times when Redis misbehaves.
_CREATE_ATTEMPTS = 3
#: Conflicting saves merge and retry, after the first retry with a random pause of up to
#: 0.5 ms * 2**n (at most 50 ms), so that no writer starves. Every refused attempt means another
#: request's save got through; this many in a row (seconds of waiting) means something is wrong.
_SAVE_ATTEMPTS = 64
_BACKOFF_BASE = 0.0005
_BACKOFF_CAP = 0.05


class SessionStore(SessionBase):
    """Django's session contract on Redis: sync and async, signed, merged, indexed."""

    if TYPE_CHECKING:  # SessionBase's private helpers, which django-stubs does not declare
        _session: dict[str, Any]

        def _get_session(self, no_load: bool = False) -> dict[str, Any]: ...
        async def _aget_session(self, no_load: bool = False) -> dict[str, Any]: ...

    if not TYPE_CHECKING and django.VERSION < (5, 1):

        async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
            # Django 4.2 has no async session API, so its SessionBase lacks this loader, which
            # this class's own async storage methods (asave, acreate, acycle_key) build on.
            self.accessed = True
            try:
                return self._session_cache
            except AttributeError:
                if self.session_key is None or no_load:
                    self._session_cache = {}
                else:
                    self._session_cache = await self.aload()
            return self._session_cache

    def __init__(self, session_key: str | None = None) -> None:
        #: Set when Redis failed the read and REDISSTORE_ON_REDIS_ERROR is "anonymous": the
        #: session is served empty and nothing may be written for the rest of this request.
        self._degraded = False
        # What SessionBase.__init__ does, without its import_string(SESSION_SERIALIZER) on every
        # instantiation (0.8 us; the class is part of the settings snapshot). The attributes are
        # Django's own: tests/test_fast_paths.py compares them with SessionBase's.
        self._session_key = session_key
        self.accessed = False
        self.modified = False
        self.serializer = _hot().serializer
        self._forget_record()
        self._sid_of: tuple[str, str, str] = ("", "", "")  # session key, secret, its id

    def _session_id(self, session_key: str) -> str:
        # A read and the save that follows both need the keyed hash: compute it once (2.5 us).
        key, secret, sid = self._sid_of
        if key != session_key or secret != _hot().secret_key:
            secret = _hot().secret_key
            sid = keys.session_id(session_key, secret)
            self._sid_of = (session_key, secret, sid)
        return sid

    @property
    def modified(self) -> bool:
        """Never true for a degraded session: ``SessionMiddleware`` then neither saves the
        empty stand-in over the stored record nor rewrites the cookie."""
        return self._modified and not self._degraded

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    # State of the record this object last read or wrote -------------------------------------

    def _forget_record(self) -> None:
        self._version: bytes = b""  # its MAC: a save is conditional on it
        self._base: bytes | None = None  # its serialized payload, for merging
        self._created = 0.0
        self._user: str | None = None  # the user its index entry is filed under
        self._until = 0.0  # its TTL cap (for a signed-in session: its index score)
        self._fresh = False  # its TTL was already slid by this request's read

    def _remember(self, record: codec.Record, data: dict[str, Any]) -> None:
        self._version = record.mac
        self._base = record.payload
        self._created = record.created
        self._user = _user_of(data)
        self._until = record.until

    # Helpers without I/O ---------------------------------------------------------------------

    def _validate_session_key(self, key: str | None) -> bool:
        # Anything but a plausible key is not even looked up (hostile cookies cost nothing).
        return keys.is_valid_session_key(key)

    def _get_new_session_key(self) -> str:
        # Django's default asks Redis whether the key exists first: a wasted round trip, since
        # the creating SET NX refuses a key that exists.
        return keys.new_session_key()

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    @staticmethod
    def _slides() -> bool:
        # REDISSTORE_IDLE_TIMEOUT makes every read slide the TTL, as SESSION_SAVE_EVERY_REQUEST
        # does, without rewriting the data.
        hot = _hot()
        return hot.save_every_request or hot.idle_timeout is not None

    # Expiry: Django's, capped by the absolute lifetime ---------------------------------------

    def get_session_cookie_age(self) -> int:
        """With an idle timeout, a session without its own expiry lasts that long unused."""
        hot = _hot()
        return hot.cookie_age if hot.idle_timeout is None else hot.idle_timeout

    @staticmethod
    def _deadline_of(created: float) -> int | None:
        """The unix time a session created at ``created`` ends whatever its activity."""
        limit = _hot().absolute_timeout
        # Whole seconds, as the header stores ``created``: every request computes the same.
        return None if limit is None else math.floor(created) + limit

    def _deadline(self, now: float) -> int | None:
        # A session not yet written is created now; a signed-in one was created by login().
        return self._deadline_of(self._created or now)

    def _cap_age(self, age: int, kwargs: dict[str, Any]) -> int:
        if _hot().absolute_timeout is None:  # no cap: skip the clock
            return age
        modification = kwargs.get("modification")
        now = modification.timestamp() if modification is not None else time.time()
        deadline = self._deadline(now)
        if deadline is None:
            return age
        return max(0, min(age, int(deadline - now)))

    def _cap_date(self, date: datetime) -> datetime:
        deadline = self._deadline(time.time())
        if deadline is None:
            return date
        if django_timezone.is_naive(date):  # USE_TZ = False: local time, as timezone.now()
            return min(date, datetime.fromtimestamp(deadline))
        return min(date, datetime.fromtimestamp(deadline, timezone.utc))

    def get_expiry_age(self, **kwargs: Any) -> int:
        """Django's expiry age, cut short by ``REDISSTORE_ABSOLUTE_TIMEOUT``: the cookie's
        ``Max-Age`` (which SessionMiddleware takes from here) and the Redis TTL agree."""
        # Django's own logic, without its ``timezone.now()`` (a datetime built on every save and
        # used only for a datetime expiry) and its settings look-up: the common cases, an expiry
        # in seconds or none, answer here; a date expiry goes to Django.
        expiry = kwargs["expiry"] if "expiry" in kwargs else self.get("_session_expiry")
        if not expiry:
            age = self.get_session_cookie_age()
        elif isinstance(expiry, (datetime, str)):
            age = super().get_expiry_age(**kwargs)
        else:
            age = expiry
        return self._cap_age(age, kwargs)

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        return self._cap_date(super().get_expiry_date(**kwargs))

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        return self._cap_age(await super().aget_expiry_age(**kwargs), kwargs)

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        return self._cap_date(await super().aget_expiry_date(**kwargs))

    def _cap(self, until: float, now: float) -> int:
        """``until`` (a TTL cap, 0 for none) no later than the absolute deadline."""
        deadline = self._deadline(now)
        if deadline is None:
            return int(until)
        return deadline if not until else int(min(until, deadline))

    def _decode_payload(self, payload: bytes) -> dict[str, Any]:
        if self.serializer is JSONSerializer:  # Django's default, exactly (not a subclass)
            data = serializers.loads(payload)
        else:
            data = self.serializer().loads(payload)
        if not isinstance(data, dict):
            raise ValueError(f"the session data is a {type(data).__name__}, not a dict")
        return data

    def _encode_payload(self, data: dict[str, Any]) -> bytes:
        if self.serializer is JSONSerializer:  # orjson where it reads back the same
            return serializers.dumps(data)
        payload = self.serializer().dumps(data)
        return payload.encode() if isinstance(payload, str) else payload

    def _read(self, name: str, blob: bytes, secret: str) -> tuple[codec.Record, dict[str, Any]]:
        record = codec.unpack(name, blob, secret)
        try:
            return record, self._decode_payload(record.payload)
        except Exception as e:  # whatever the serializer raises on bytes it did not write
            raise codec.InvalidRecord(f"the payload does not decode: {e}") from e

    # Flows: the logic of each operation, written once -----------------------------------------

    def _load_flow(self) -> Flow[dict[str, Any]]:
        session_key = self.session_key
        if session_key is None:  # no key, or one that failed validation: nothing to look up
            self._forget_record()
            return {}
        now = time.time()
        sid = self._session_id(session_key)
        name = keys.session_name(sid)
        sliding = self._slides()
        if sliding:
            (blob,) = yield [LOAD_SLIDING.call(name, repr(now))]
        else:
            (blob,) = yield [Call.command("GET", name)]
        secret = _hot().secret_key
        if blob is None and len(keys.secrets()) > 1:
            blob, secret, name = yield from self._find_rotated(session_key, name)
        self._forget_record()
        if blob is None:
            self._session_key = None
            return {}
        try:
            record, data = self._read(name, blob, secret)
        except codec.InvalidRecord as e:
            security_logger.warning("Session data under %s failed verification: %s", name, e)
            self._session_key = None
            return {}
        self._remember(record, data)
        deadline = self._deadline_of(record.created)
        if deadline is not None and now >= deadline:
            # Past its absolute lifetime (its TTL says otherwise only when the setting was
            # lowered since it was written): never served, and gone for good.
            yield self._delete_calls(name, self._user)
            self._forget_record()
            self._session_key = None
            return {}
        if secret != _hot().secret_key:
            # Stored under a name derived from a fallback secret: move it under today's name.
            try:
                yield from self._write_flow(data, now, create=True, retire=(name, self._user))
            except CreateError:  # a parallel request moved it first: save merges with that
                self._version = b"\x00"
            return data
        if sliding and record.idle:
            self._fresh = True
            if (
                self._user
                and record.until - now < record.idle
                and (deadline is None or record.until < deadline)
            ):
                # The slide hit the index entry's score: extend both (once per headroom period).
                yield from self._touch_flow(sid, name, record.idle, now)
            if _persistent(data):
                # The read moved the expiry: SessionMiddleware re-sends the cookie (with the new
                # Max-Age) for a modified session only. The save it then calls writes nothing
                # unless the data changed (see _save_flow).
                self.modified = True
        elif sliding:
            self._fresh = True
        return data

    def _find_rotated(self, session_key: str, current: str) -> Flow[tuple[bytes | None, str, str]]:
        """After ``SECRET_KEY`` rotation: the record under a fallback secret's name, if any.

        The current name is read again last, in the same round trip: a parallel request may
        have moved the record there (it writes the new name before deleting the old one) after
        this one looked, and missing it would sign the user out.
        """
        fallbacks = keys.secrets()[1:]
        names = [keys.session_name(keys.session_id(session_key, s)) for s in fallbacks]
        *blobs, moved = yield [Call.command("GET", name) for name in [*names, current]]
        for secret, name, blob in zip(fallbacks, names, blobs, strict=True):
            if blob is not None:
                return blob, secret, name
        return moved, settings.SECRET_KEY, current

    def _touch_flow(self, sid: str, name: str, age: int, now: float) -> Flow[None]:
        until = self._cap(self._index_until(now, age), now)
        replies = yield [
            TOUCH.call(name, age * 1000, until.to_bytes(4, "big")),
            INDEX_ADD.call(keys.user_index_name(self._user or ""), sid, until, repr(now)),
        ]
        if replies[0]:
            self._until = until

    @staticmethod
    def _index_until(now: float, age: int) -> int:
        return math.ceil(now + age + min(age, conf.INDEX_HEADROOM))

    def _write_flow(
        self,
        data: dict[str, Any],
        now: float,
        *,
        create: bool,
        retire: tuple[str, str | None] | None = None,
        lifetime: int | None = None,
    ) -> Flow[None]:
        """Write ``data``: a new record (``create``) or a conditional save of the one read.

        ``retire`` names a record (and its user) to delete in the same round trip: the old key
        of ``cycle_key()``. ``lifetime`` (seconds) replaces the expiry age as the record's TTL:
        a session imported from another engine keeps the time it had left there. On a
        conflicting save, merge and retry; a record that is gone is never brought back.
        """
        session_key = self.session_key
        assert session_key is not None
        sid = self._session_id(session_key)
        name = keys.session_name(sid)
        extra = self._delete_calls(*retire) if retire else []
        ours = data
        base: dict[str, Any] | None = None  # what we read, and what we changed it into:
        mine: dict[str, Any] = {}  # both decoded only if someone else wrote meanwhile
        for attempt in range(_SAVE_ATTEMPTS):
            expiry = ours.get("_session_expiry")
            age = self.get_expiry_age(expiry=expiry)
            ttl = age if lifetime is None else lifetime
            user = _user_of(ours)
            index_calls: list[Call] = []
            if self._user and self._user != user and not create:
                index_calls.append(Call.command("ZREM", keys.user_index_name(self._user), sid))
            if ttl <= 0:  # expired already: a session in the past is a session gone
                yield [Call.command("DEL", name), *index_calls, *extra]
                self._forget_record()
                return
            until: float = 0
            if user:
                until = self._until if user == self._user and not create else 0
                if now + ttl > until:
                    until = self._cap(self._index_until(now, ttl), now)
                    index_calls.append(
                        INDEX_ADD.call(keys.user_index_name(user), sid, until, repr(now))
                    )
            until = self._cap(until, now)  # the absolute lifetime caps every slide
            payload = self._encode_payload(ours)
            hot = _hot()
            if hot.max_size is not None and len(payload) > hot.max_size:
                raise SessionTooLarge(
                    f"the session {name} is {len(payload)} bytes serialized, over "
                    f"REDISSTORE_MAX_SIZE ({hot.max_size}); nothing was written"
                )
            blob, mac = codec.pack(
                name,
                payload,
                secret=hot.secret_key,
                created=self._created or now,
                saved=now,
                idle=0 if isinstance(expiry, (datetime, str)) else age,
                until=until,
                compress_min_size=hot.compress_min_size,
            )
            if create:
                write = Call.command("SET", name, blob, "NX", "PX", ttl * 1000)
            else:
                write = SAVE.call(name, self._version, blob, ttl * 1000)
            reply = (yield [write, *index_calls, *extra])[0]
            extra = []
            if create and reply is None:
                raise CreateError
            if not create and reply == 0:
                self._forget_record()
                raise UpdateError
            if create or reply == 1:
                self._version, self._base, self._user, self._until = mac, payload, user, until
                self._created = self._created or now
                if ours is not data:
                    self._session_cache = ours
                return
            if base is None:
                base = self._decode_payload(self._base) if self._base is not None else {}
                mine = self._decode_payload(self._encode_payload(data))
            ours = self._merge_into(name, reply, base, mine)
            if attempt:
                # Conflicting again: a request that reads and saves in a tight loop would keep
                # winning. A random, growing pause (full jitter) lets the others through.
                yield Pause(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))
            now = time.time()
        raise RedisStoreError(f"gave up saving {name} after {_SAVE_ATTEMPTS} conflicting writes")

    def _import_flow(self, data: dict[str, Any], lifetime: int | None) -> Flow[bool]:
        """Store ``data`` under this store's key for ``lifetime`` seconds (None: its expiry
        age), unless a session already lives there: False then (``sessions import`` is
        idempotent)."""
        try:
            yield from self._write_flow(data, time.time(), create=True, lifetime=lifetime)
        except CreateError:
            return False
        return True

    def decode_stored(self, name: str, blob: bytes) -> tuple[codec.Record, dict[str, Any]]:
        """Verify and decode the bytes stored under the key ``name``, as a request's read does
        (``SECRET_KEY`` first, then its fallbacks); raise ``codec.InvalidRecord`` if they fail.

        For the tools that read other sessions than this store's own (``index``,
        ``operations``): one store decodes any number of records.
        """
        error = codec.InvalidRecord("no secret to verify the record with")
        for secret in keys.secrets():
            try:
                return self._read(name, blob, secret)
            except codec.InvalidRecord as e:
                error = e
        raise error

    def _merge_into(
        self, name: str, current: bytes, base: dict[str, Any], mine: dict[str, Any]
    ) -> dict[str, Any]:
        """Our changes (``base`` to ``mine``) on top of ``current``, which someone else wrote."""
        try:
            record, theirs = self._read(name, current, settings.SECRET_KEY)
        except codec.InvalidRecord as e:
            security_logger.warning("Session data under %s failed verification: %s", name, e)
            self._version = codec.version_of(current)  # nothing to merge with: replace it
            return mine
        self._remember(record, theirs)
        return merge.merge(base, mine, theirs)

    def _delete_calls(self, name: str, user: str | None) -> list[Call]:
        calls = [Call.command("DEL", name)]
        if user:
            sid = name.rsplit(":", 1)[1]
            calls.append(Call.command("ZREM", keys.user_index_name(user), sid))
        return calls

    def _delete_flow(self, session_key: str | None) -> Flow[None]:
        if session_key is None:
            session_key = self.session_key
        if not keys.is_valid_session_key(session_key):
            return
        assert session_key is not None
        name = keys.session_name(keys.session_id(session_key))
        if session_key == self.session_key and self._version:
            # This store read the record: its user (if any) is known, one round trip.
            yield self._delete_calls(name, self._user)
        else:
            # A session this store never read (``delete(other_key)``): take it out with GETDEL
            # and, if it was signed in, its index entry with a second trip. Without that the
            # entry would linger until its score passed.
            (blob,) = yield [Call.command("GETDEL", name)]
            user = self._user_in(name, blob) if blob is not None else None
            if user:
                yield self._delete_calls(name, user)[1:]
        if session_key == self.session_key:
            self._forget_record()

    def _user_in(self, name: str, blob: bytes) -> str | None:
        """The user a stored record belongs to, or None (anonymous, or not a valid record)."""
        try:
            return _user_of(self._read(name, blob, settings.SECRET_KEY)[1])
        except codec.InvalidRecord:
            return None

    def _exists_flow(self, session_key: str | None) -> Flow[bool]:
        if not keys.is_valid_session_key(session_key):
            return False
        assert session_key is not None
        (found,) = yield [Call.command("EXISTS", keys.session_name(keys.session_id(session_key)))]
        return bool(found)

    def _save_flow(self, data: dict[str, Any], must_create: bool) -> Flow[None]:
        if (
            self._fresh
            and not must_create
            and (not self.modified or self._encode_payload(data) == self._base)
        ):
            return  # the read already slid the TTL and the data is as read: no round trip
        yield from self._write_flow(data, time.time(), create=must_create)

    def _create_flow(self, data: dict[str, Any], retire: str | None) -> Flow[None]:
        # The session being retired (cycle_key's old key) is deleted in the same round trip.
        retired = (keys.session_name(keys.session_id(retire)), self._user) if retire else None
        self._created = 0.0
        for _ in range(_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                yield from self._write_flow(data, time.time(), create=True, retire=retired)
            except CreateError:
                retired = None  # deleted with the first attempt
                continue
            self._session_cache = data
            self.modified = True
            return
        raise RedisStoreError("could not find an unused session key; is Redis answering right?")

    # Failure policy ----------------------------------------------------------------------------

    def _load_failed(self, error: RedisStoreError) -> dict[str, Any] | None:
        """What a read that Redis failed returns; None when ``error`` must propagate.

        Something other than a string under the session's key (a foreign write) is tampered
        data: an empty session and a security log line, as for a record that fails its MAC. An
        outage propagates, unless REDISSTORE_ON_REDIS_ERROR is "anonymous": then the request
        sees an empty session while the cookie and the stored record stay as they are.
        """
        if _is_wrong_type(error):
            name = keys.session_name(keys.session_id(self.session_key or ""))
            security_logger.warning("Session data under %s is not a session: %s", name, error)
            self._forget_record()
            self._session_key = None
            return {}
        if not isinstance(error, ConnectionInterrupted) or conf.ON_REDIS_ERROR != "anonymous":
            return None
        logger.warning(
            "Serving this request without its session (kept in Redis, not saved in this "
            "request): %s",
            error,
        )
        self._degraded = True
        return {}

    def _skip_degraded_save(self) -> bool:
        """True when this request read its session in degraded mode: the save must not happen.

        Saving the empty stand-in (or a change made to it) would overwrite the real record.
        """
        if self._degraded and self._modified:
            logger.warning("Dropping this request's session changes: Redis failed its read")
        return self._degraded

    def _refuse_degraded(self, operation: str) -> None:
        # Deleting or re-keying a session whose data this request could not read would sign
        # its user out, or lose the stored data, because Redis blinked: fail the request.
        if self._degraded:
            raise ConnectionInterrupted(
                f"cannot {operation} a session that Redis failed to read in this request"
            )

    # Drivers -------------------------------------------------------------------------------

    # The drivers live in ``connection`` (the bulk tools of ``index`` and ``operations`` use them
    # too); these names stay for the methods below.
    _run = staticmethod(run)
    _arun = staticmethod(arun)

    # Django's contract, sync ---------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        try:
            return self._run(self._load_flow())
        except RedisStoreError as e:
            data = self._load_failed(e)
            if data is None:
                raise
            return data

    def exists(self, session_key: str | None) -> bool:
        return self._run(self._exists_flow(session_key))

    def create(self) -> None:
        self._refuse_degraded("create")
        self._run(self._create_flow(self._get_session(no_load=True), retire=None))

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        if self._skip_degraded_save():
            return
        if self.session_key is None:  # the read found no session under that key: a new one
            return self.create()
        self._run(self._save_flow(data, must_create))

    def delete(self, session_key: str | None = None) -> None:
        self._refuse_degraded("delete")
        self._run(self._delete_flow(session_key))

    def cycle_key(self) -> None:
        data = self._session
        self._refuse_degraded("cycle the key of")
        self._run(self._create_flow(data, retire=self.session_key))

    @classmethod
    def clear_expired(cls) -> None:
        """Prune the per-user index of entries whose session is gone (``manage.py clearsessions``).

        Redis expires the sessions themselves. The summary goes to the ``django_redisstore``
        logger at INFO (see README.rst, "Operating sessions").
        """
        from .index import prune_indexes

        prune_indexes()

    # Django's contract, async (Django 5.1+) ---------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        try:
            return await self._arun(self._load_flow())
        except RedisStoreError as e:
            data = self._load_failed(e)
            if data is None:
                raise
            return data

    async def aexists(self, session_key: str | None) -> bool:
        return await self._arun(self._exists_flow(session_key))

    async def acreate(self) -> None:
        self._refuse_degraded("create")
        data = await self._aget_session(no_load=True)
        await self._arun(self._create_flow(data, retire=None))

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        if self._skip_degraded_save():
            return
        if self.session_key is None:  # the read found no session under that key: a new one
            return await self.acreate()
        await self._arun(self._save_flow(data, must_create))

    async def adelete(self, session_key: str | None = None) -> None:
        self._refuse_degraded("delete")
        await self._arun(self._delete_flow(session_key))

    async def acycle_key(self) -> None:
        data = await self._aget_session()
        self._refuse_degraded("cycle the key of")
        await self._arun(self._create_flow(data, retire=self.session_key))

    @classmethod
    async def aclear_expired(cls) -> None:
        """The async twin of ``clear_expired``."""
        from .index import aprune_indexes

        await aprune_indexes()


def _persistent(data: dict[str, Any]) -> bool:
    """Whether the session's cookie has an expiry (``get_expire_at_browser_close`` negated)."""
    expiry = data.get("_session_expiry")
    if expiry is None:
        return not _hot().expire_at_browser_close
    return bool(expiry != 0)


def _user_of(data: dict[str, Any]) -> str | None:
    user = data.get(SESSION_KEY)
    return None if user is None else str(user)


def _is_wrong_type(error: RedisStoreError) -> bool:
    """True when Redis refused a read because the key holds something other than a string."""
    cause = error.__cause__
    return isinstance(cause, ResponseError) and "WRONGTYPE" in str(cause)


class _Settings(NamedTuple):
    """The settings a request's read and save consult, read once per settings change.

    A read-modify-write consulted a dozen settings, half of them ``REDISSTORE_*`` left at their
    default, which Django answers through an ``AttributeError`` (about 2.5 us each): together a
    third of the engine's own CPU. ``setting_changed`` (``override_settings``, pytest-django's
    ``settings`` fixture) drops the snapshot.
    """

    secret_key: str
    save_every_request: bool
    expire_at_browser_close: bool
    cookie_age: int
    idle_timeout: int | None
    absolute_timeout: int | None
    max_size: int | None
    compress_min_size: int | None
    serializer: Any  # the SESSION_SERIALIZER class


@lru_cache(maxsize=1)
def _hot() -> _Settings:
    return _Settings(
        secret_key=settings.SECRET_KEY,
        save_every_request=bool(settings.SESSION_SAVE_EVERY_REQUEST),
        expire_at_browser_close=bool(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE),
        cookie_age=int(settings.SESSION_COOKIE_AGE),
        idle_timeout=conf.IDLE_TIMEOUT,
        absolute_timeout=conf.ABSOLUTE_TIMEOUT,
        max_size=conf.MAX_SIZE,
        compress_min_size=conf.COMPRESS_MIN_SIZE,
        serializer=import_string(settings.SESSION_SERIALIZER),
    )


def _forget_settings(**kwargs: object) -> None:
    _hot.cache_clear()


setting_changed.connect(_forget_settings, dispatch_uid="django_redisstore.session")
