"""The session engine: ``SESSION_ENGINE = "django_redisstore.session"``.

Every operation is written once, as a *flow*: a generator that yields batches of Redis calls
(``scripts.Call``) and receives their replies. ``_run`` drives a flow with the sync client and
``_arun`` with the async one, so the sync and async APIs share all but the socket.

Round trips: reading a session is one (``GET``, or a script that also slides its TTL), saving a
change is one (a conditional write, plus index upkeep in the same pipeline), creating is one
(``SET NX``). Nothing connects until a session is actually read or written.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import (
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.signals import setting_changed

from . import codec, keys, merge
from .conf import conf
from .connection import aexecute, execute, get_async_client, get_client
from .exceptions import RedisStoreError
from .scripts import INDEX_ADD, LOAD_SLIDING, SAVE, TOUCH, Call

T = TypeVar("T")
Flow = Generator[list[Call], list[Any], T]

security_logger = logging.getLogger("django.security.SuspiciousSession")

#: A fresh key colliding with a live one is a 1 in 36**32 event; a few tries make a collision
#: loop impossible without ever spinning thousands of times when Redis misbehaves.
_CREATE_ATTEMPTS = 3
#: Conflicting saves merge and retry; this many in a row means something is badly wrong.
_SAVE_ATTEMPTS = 20


class SessionStore(SessionBase):
    """Django's session contract on Redis: sync and async, signed, merged, indexed."""

    if TYPE_CHECKING:  # SessionBase's private helpers, which django-stubs does not declare
        _session: dict[str, Any]

        def _get_session(self, no_load: bool = False) -> dict[str, Any]: ...
        async def _aget_session(self, no_load: bool = False) -> dict[str, Any]: ...

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._forget_record()
        self._sid_of: tuple[str, str, str] = ("", "", "")  # session key, secret, its id

    def _session_id(self, session_key: str) -> str:
        # A read and the save that follows both need the keyed hash: compute it once (2.5 us).
        key, secret, sid = self._sid_of
        if key != session_key or secret != settings.SECRET_KEY:
            secret = settings.SECRET_KEY
            sid = keys.session_id(session_key, secret)
            self._sid_of = (session_key, secret, sid)
        return sid

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
        return bool(settings.SESSION_SAVE_EVERY_REQUEST)

    def _decode_payload(self, payload: bytes) -> dict[str, Any]:
        data = self.serializer().loads(payload)
        if not isinstance(data, dict):
            raise ValueError(f"the session data is a {type(data).__name__}, not a dict")
        return data

    def _encode_payload(self, data: dict[str, Any]) -> bytes:
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
        assert session_key is not None
        now = time.time()
        sid = self._session_id(session_key)
        name = keys.session_name(sid)
        sliding = self._slides()
        if sliding:
            (blob,) = yield [LOAD_SLIDING.call(name, repr(now))]
        else:
            (blob,) = yield [Call.command("GET", name)]
        secret = settings.SECRET_KEY
        if blob is None and len(keys.secrets()) > 1:
            blob, secret, name = yield from self._find_rotated(session_key, now)
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
        if secret != settings.SECRET_KEY:
            # Stored under a name derived from a fallback secret: move it under today's name.
            try:
                yield from self._write_flow(data, now, create=True, retire=(name, self._user))
            except CreateError:  # a parallel request moved it first: save merges with that
                self._version = b"\x00"
            return data
        if sliding:
            self._fresh = True
            if record.idle and self._user and record.until - now < record.idle:
                # The slide hit the index entry's score: extend both (once per headroom period).
                yield from self._touch_flow(sid, name, record.idle, now)
        return data

    def _find_rotated(self, session_key: str, now: float) -> Flow[tuple[bytes | None, str, str]]:
        """After ``SECRET_KEY`` rotation: the record under a fallback secret's name, if any."""
        fallbacks = keys.secrets()[1:]
        names = [keys.session_name(keys.session_id(session_key, s)) for s in fallbacks]
        blobs = yield [Call.command("GET", name) for name in names]
        for secret, name, blob in zip(fallbacks, names, blobs, strict=True):
            if blob is not None:
                return blob, secret, name
        return None, settings.SECRET_KEY, ""

    def _touch_flow(self, sid: str, name: str, age: int, now: float) -> Flow[None]:
        until = self._index_until(now, age)
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
    ) -> Flow[None]:
        """Write ``data``: a new record (``create``) or a conditional save of the one read.

        ``retire`` names a record (and its user) to delete in the same round trip: the old key
        of ``cycle_key()``. On a conflicting save, merge and retry; a record that is gone is
        never brought back.
        """
        session_key = self.session_key
        assert session_key is not None
        sid = self._session_id(session_key)
        name = keys.session_name(sid)
        extra = self._delete_calls(*retire) if retire else []
        ours = data
        base: dict[str, Any] | None = None  # what we read, and what we changed it into:
        mine: dict[str, Any] = {}  # both decoded only if someone else wrote meanwhile
        for _ in range(_SAVE_ATTEMPTS):
            expiry = ours.get("_session_expiry")
            age = self.get_expiry_age(expiry=expiry)
            user = _user_of(ours)
            index_calls: list[Call] = []
            if self._user and self._user != user and not create:
                index_calls.append(Call.command("ZREM", keys.user_index_name(self._user), sid))
            if age <= 0:  # expired already: a session in the past is a session gone
                yield [Call.command("DEL", name), *index_calls, *extra]
                self._forget_record()
                return
            until: float = 0
            if user:
                until = self._until if user == self._user and not create else 0
                if now + age > until:
                    until = self._index_until(now, age)
                    index_calls.append(
                        INDEX_ADD.call(keys.user_index_name(user), sid, until, repr(now))
                    )
            payload = self._encode_payload(ours)
            blob, mac = codec.pack(
                name,
                payload,
                secret=settings.SECRET_KEY,
                created=self._created or now,
                saved=now,
                idle=0 if isinstance(expiry, (datetime, str)) else age,
                until=until,
                compress_min_size=_compress_min_size(),
            )
            if create:
                write = Call.command("SET", name, blob, "NX", "PX", age * 1000)
            else:
                write = SAVE.call(name, self._version, blob, age * 1000)
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
                serializer = self.serializer()
                base = serializer.loads(self._base) if self._base is not None else {}
                mine = serializer.loads(self._encode_payload(data))
            ours = self._merge_into(name, reply, base, mine)
            now = time.time()
        raise RedisStoreError(f"gave up saving {name} after {_SAVE_ATTEMPTS} conflicting writes")

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
            session_key, user = self.session_key, self._user
        else:
            user = self._user if session_key == self.session_key else None
        if not keys.is_valid_session_key(session_key):
            return
        assert session_key is not None
        name = keys.session_name(keys.session_id(session_key))
        yield self._delete_calls(name, user)
        if session_key == self.session_key:
            self._forget_record()

    def _exists_flow(self, session_key: str | None) -> Flow[bool]:
        if not keys.is_valid_session_key(session_key):
            return False
        assert session_key is not None
        (found,) = yield [Call.command("EXISTS", keys.session_name(keys.session_id(session_key)))]
        return bool(found)

    def _save_flow(self, data: dict[str, Any], must_create: bool) -> Flow[None]:
        if self._fresh and not self.modified and not must_create:
            return  # the read already slid the TTL and nothing changed: no round trip
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

    # Drivers -------------------------------------------------------------------------------

    @staticmethod
    def _run(flow: Flow[T]) -> T:
        client = get_client()
        try:
            calls = next(flow)
            while True:
                calls = flow.send(execute(client, calls))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    @staticmethod
    async def _arun(flow: Flow[T]) -> T:
        client = get_async_client()
        try:
            calls = next(flow)
            while True:
                calls = flow.send(await aexecute(client, calls))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # Django's contract, sync ---------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        return self._run(self._load_flow())

    def exists(self, session_key: str | None) -> bool:
        return self._run(self._exists_flow(session_key))

    def create(self) -> None:
        self._run(self._create_flow(self._get_session(no_load=True), retire=None))

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        self._run(self._save_flow(data, must_create))

    def delete(self, session_key: str | None = None) -> None:
        self._run(self._delete_flow(session_key))

    def cycle_key(self) -> None:
        data = self._session
        self._run(self._create_flow(data, retire=self.session_key))

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions by itself (every record has a TTL)."""

    # Django's contract, async (Django 5.1+) ---------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        return await self._arun(self._load_flow())

    async def aexists(self, session_key: str | None) -> bool:
        return await self._arun(self._exists_flow(session_key))

    async def acreate(self) -> None:
        data = await self._aget_session(no_load=True)
        await self._arun(self._create_flow(data, retire=None))

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        await self._arun(self._save_flow(data, must_create))

    async def adelete(self, session_key: str | None = None) -> None:
        await self._arun(self._delete_flow(session_key))

    async def acycle_key(self) -> None:
        data = await self._aget_session()
        await self._arun(self._create_flow(data, retire=self.session_key))

    @classmethod
    async def aclear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions by itself (every record has a TTL)."""


def _user_of(data: dict[str, Any]) -> str | None:
    user = data.get(SESSION_KEY)
    return None if user is None else str(user)


@lru_cache(maxsize=1)
def _compress_min_size() -> int | None:
    # Read once per settings change, not per save: a setting left at its default costs 2.7 us.
    return conf.COMPRESS_MIN_SIZE


def _forget_settings(setting: str, **kwargs: object) -> None:
    if setting == "REDISSTORE_COMPRESS_MIN_SIZE":
        _compress_min_size.cache_clear()


setting_changed.connect(_forget_settings, dispatch_uid="django_redisstore.session")
