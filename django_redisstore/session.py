"""The session engine: ``SESSION_ENGINE = "django_redisstore.session"``.

``SessionStore`` does what Django's session contract asks (load, exists, create, save, delete,
cycle_key, the expiry getters, and their async twins) and delegates the rest: the Redis work of
each operation to a flow of ``storage`` (written once, driven by ``flows.run`` with the sync
client or ``flows.arun`` with the async one), the expiry arithmetic to ``expiry``, the
record format and the payload to ``codec``. What a request gets when Redis fails is decided here
(``REDISSTORE_ON_REDIS_ERROR``). Nothing connects until a session is actually read or written.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import django
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import SessionBase

from . import codec, expiry, keys, limits, storage
from .conf import get as snapshot
from .exceptions import ConnectionInterrupted, RedisStoreError, WrongType
from .flows import arun, run

security_logger = logging.getLogger("django.security.SuspiciousSession")
logger = logging.getLogger("django_redisstore")


class SessionStore(SessionBase):
    """Django's session contract on Redis: sync and async, signed, merged, indexed."""

    if TYPE_CHECKING:  # SessionBase's private helpers, which django-stubs does not declare
        _session: dict[str, Any]
        _session_cache: dict[str, Any]

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
        self.serializer = snapshot().serializer
        self._forget_record()
        self._sid_of: tuple[str, str, str] = ("", "", "")  # session key, secret, its id

    def _session_id(self, session_key: str) -> str:
        # A read and the save that follows both need the keyed hash: compute it once (2.5 us).
        key, secret, sid = self._sid_of
        current = snapshot().secret_key
        if key != session_key or secret != current:
            secret = current
            sid = keys.session_id(session_key, secret)
            self._sid_of = (session_key, secret, sid)
        return sid

    @property
    def modified(self) -> bool:
        """Whether ``SessionMiddleware`` must save the session and re-send its cookie.

        Set by a change of the data, as in Django, and also by a read that slid a persistent
        session's TTL (the cookie's ``Max-Age`` must follow; the save then writes nothing). Never
        true for a degraded session: the empty stand-in is neither saved over the stored record
        nor sent as a new cookie."""
        return self._modified and not self._degraded

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    @property
    def degraded(self) -> bool:
        """Whether Redis failed this request's read and ``REDISSTORE_ON_REDIS_ERROR`` is
        ``"anonymous"``: the request sees an empty session, nothing is saved, and
        ``RedisUnavailableMiddleware`` leaves the cookie as it is."""
        return self._degraded

    # State of the record this object last read or wrote (kept by the flows of ``storage``) ----

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
        self._user = codec.user_of(data)
        self._until = record.until

    # Keys ------------------------------------------------------------------------------------

    def _validate_session_key(self, key: str | None) -> bool:
        # Anything but a plausible key is not even looked up (hostile cookies cost nothing).
        return keys.is_valid_session_key(key)

    def _get_new_session_key(self) -> str:
        # Django's default asks Redis whether the key exists first: a wasted round trip, since
        # the creating SET NX refuses a key that exists.
        return keys.new_session_key()

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    # Expiry: Django's, capped by the absolute lifetime (the arithmetic is ``expiry``'s) ---------

    def get_session_cookie_age(self) -> int:
        """With an idle timeout, a session without its own expiry lasts that long unused."""
        settings = snapshot()
        idle = settings.IDLE_TIMEOUT
        return settings.cookie_age if idle is None else idle

    def _deadline(self, now: float) -> int | None:
        # A session not yet written is created now; a signed-in one was created by login().
        return expiry.deadline(self._created or now, snapshot().ABSOLUTE_TIMEOUT)

    def _cap(self, until: float, now: float) -> int:
        """``until`` (a TTL cap, 0 for none) no later than the absolute deadline."""
        return expiry.cap_until(until, self._deadline(now))

    def _cap_age(self, age: int, kwargs: dict[str, Any]) -> int:
        if snapshot().ABSOLUTE_TIMEOUT is None:  # no cap: skip the clock
            return age
        modification = kwargs.get("modification")
        now = modification.timestamp() if modification is not None else time.time()
        return expiry.cap_age(age, now, self._deadline(now))

    def _cap_date(self, date: datetime) -> datetime:
        return expiry.cap_date(date, self._deadline(time.time()))

    def get_expiry_age(self, **kwargs: Any) -> int:
        """Django's expiry age, cut short by ``REDISSTORE_ABSOLUTE_TIMEOUT``: the cookie's
        ``Max-Age`` (which SessionMiddleware takes from here) and the Redis TTL agree."""
        # Django's own logic, without its ``timezone.now()`` (a datetime built on every save and
        # used only for a datetime expiry) and its settings look-up: the common cases, an expiry
        # in seconds or none, answer here; a date expiry goes to Django.
        expires = kwargs["expiry"] if "expiry" in kwargs else self.get("_session_expiry")
        if not expires:
            age = self.get_session_cookie_age()
        elif isinstance(expires, (datetime, str)):
            age = super().get_expiry_age(**kwargs)
        else:
            age = expires
        return self._cap_age(age, kwargs)

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        return self._cap_date(super().get_expiry_date(**kwargs))

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        return self._cap_age(await super().aget_expiry_age(**kwargs), kwargs)

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        return self._cap_date(await super().aget_expiry_date(**kwargs))

    # The flows (``storage``): bench/interleave.py drives the first two without Redis ----------

    # The functions themselves, bound as methods: no call layer of their own.
    _load_flow = storage.load_flow
    _save_flow = storage.save_flow
    _import_flow = storage.import_flow

    # Failure policy ----------------------------------------------------------------------------

    def _load_failed(self, error: RedisStoreError) -> dict[str, Any] | None:
        """What a read that Redis failed returns; None when ``error`` must propagate.

        Something other than a string under the session's key (a foreign write) is tampered
        data: an empty session and a security log line, as for a record that fails its MAC. An
        outage propagates, unless REDISSTORE_ON_REDIS_ERROR is "anonymous": then the request
        sees an empty session while the cookie and the stored record stay as they are.
        """
        if isinstance(error, WrongType):
            name = keys.session_name(keys.session_id(self.session_key or ""))
            security_logger.warning("Session data under %s is not a session: %s", name, error)
            self._forget_record()
            self._session_key = None
            return {}
        anonymous = snapshot().ON_REDIS_ERROR == "anonymous"
        if not isinstance(error, ConnectionInterrupted) or not anonymous:
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

    # Django's contract, sync ---------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        try:
            return run(self._load_flow())
        except RedisStoreError as e:
            data = self._load_failed(e)
            if data is None:
                raise
            return data

    def exists(self, session_key: str | None) -> bool:
        return run(storage.exists_flow(session_key))

    def create(self) -> None:
        self._refuse_degraded("create")
        run(storage.create_flow(self, self._get_session(no_load=True), retire=None))

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        if self._skip_degraded_save():
            return
        if self.session_key is None:  # the read found no session under that key: a new one
            return self.create()
        run(self._save_flow(data, must_create))

    def delete(self, session_key: str | None = None) -> None:
        self._refuse_degraded("delete")
        run(storage.delete_flow(self, session_key))

    def cycle_key(self) -> None:
        data = self._session
        self._refuse_degraded("cycle the key of")
        run(storage.create_flow(self, data, retire=self.session_key))

    @classmethod
    def clear_expired(cls) -> None:
        """Prune the per-user index of entries whose session is gone (``manage.py clearsessions``).

        Redis expires the sessions themselves. The summary goes to the ``django_redisstore``
        logger at INFO (see docs/command.rst, "clearsessions").
        """
        from .index import prune_indexes

        prune_indexes()

    # Django's contract, async (Django 5.1+) ---------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        try:
            return await arun(self._load_flow())
        except RedisStoreError as e:
            data = self._load_failed(e)
            if data is None:
                raise
            return data

    async def aexists(self, session_key: str | None) -> bool:
        return await arun(storage.exists_flow(session_key))

    async def acreate(self) -> None:
        self._refuse_degraded("create")
        data = await self._aget_session(no_load=True)
        await arun(storage.create_flow(self, data, retire=None))

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        if self._skip_degraded_save():
            return
        if self.session_key is None:  # the read found no session under that key: a new one
            return await self.acreate()
        await arun(self._save_flow(data, must_create))

    async def adelete(self, session_key: str | None = None) -> None:
        self._refuse_degraded("delete")
        await arun(storage.delete_flow(self, session_key))

    async def acycle_key(self) -> None:
        data = await self._aget_session()
        self._refuse_degraded("cycle the key of")
        await arun(storage.create_flow(self, data, retire=self.session_key))

    @classmethod
    async def aclear_expired(cls) -> None:
        """The async twin of ``clear_expired``."""
        from .index import aprune_indexes

        await aprune_indexes()


# The engine, not the app, keeps the per-user limit: connected wherever the engine is in use.
user_logged_in.connect(limits.on_sign_in, dispatch_uid="django_redisstore.limits")
