"""Django's session contract on the async API (Django 5.1+), through ``redis.asyncio`` only.

Every test here runs with the sync client made unusable (``get_client`` raises), so a pass
proves that the async methods never fall back to a blocking socket or ``sync_to_async``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError
from django.test import override_settings
from django.utils import timezone

from django_redisstore import clients, flows, keys
from django_redisstore.session import SessionStore

from .contract import index_members
from .django_versions import ASYNC_API, ASYNC_API_FEATURE, skip_below

#: Tests of the async methods that this engine defines itself: they run on Django 4.2 too.
ANY_DJANGO = {"test_storage_methods_on_every_django"}


@pytest.fixture(autouse=True)
def async_api(request: pytest.FixtureRequest) -> None:
    if request.function.__name__ not in ANY_DJANGO:
        skip_below(request.node, ASYNC_API, ASYNC_API_FEATURE)


class SyncClientUsed(AssertionError):
    pass


@pytest.fixture(autouse=True, params=[True, False], ids=["tz", "naive"])
def use_tz(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.USE_TZ = request.param
    return bool(request.param)


@pytest.fixture(autouse=True)
async def async_only(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Forbid the sync client (the suite closes the async client when the test ends)."""

    def forbidden() -> redis.Redis:
        raise SyncClientUsed("the async API used the sync Redis client")

    monkeypatch.setattr(flows, "get_client", forbidden)
    yield


@pytest.fixture
async def session() -> AsyncIterator[SessionStore]:
    store = SessionStore()
    yield store
    await store.adelete()


def name_of(session_key: str | None) -> str:
    assert session_key is not None
    return keys.session_name(keys.session_id(session_key))


async def stored_names(prefix: str) -> list[bytes]:
    client = clients.get_async_client()
    return sorted([name async for name in client.scan_iter(f"{prefix}:*")])


async def test_sync_client_is_really_forbidden(session: SessionStore) -> None:
    session["a"] = 1
    with pytest.raises(SyncClientUsed):
        session.save()


async def test_aget_on_empty_session(session: SessionStore) -> None:
    assert await session.aget("cat") is None
    assert await session.aget("cat", "default") == "default"


async def test_aset_marks_modified_and_apop_returns_value(session: SessionStore) -> None:
    await session.aset("cat", "dog")
    assert session.modified is True
    assert await session.apop("cat") == "dog"


async def test_apop_defaults_and_missing(session: SessionStore) -> None:
    await session.aset("some key", "exists")
    session.accessed = session.modified = False
    assert await session.apop("some key") == "exists"
    assert session.accessed is True and session.modified is True
    session.modified = False
    assert await session.apop("missing", "default") == "default"
    assert await session.apop("missing", default="named") == "named"
    assert session.modified is False
    with pytest.raises(KeyError):
        await session.apop("missing")


async def test_asetdefault_and_aupdate(session: SessionStore) -> None:
    assert await session.asetdefault("foo", "bar") == "bar"
    assert await session.asetdefault("foo", "baz") == "bar"
    await session.aupdate({"update key": 1})
    assert session.modified is True
    assert await session.aget("update key") == 1


async def test_ahas_key_akeys_avalues_aitems(session: SessionStore) -> None:
    await session.aset("x", 1)
    session.accessed = session.modified = False
    assert await session.ahas_key("x") is True
    assert await session.ahas_key("y") is False
    assert list(await session.akeys()) == ["x"]
    assert list(await session.avalues()) == [1]
    assert list(await session.aitems()) == [("x", 1)]
    assert session.accessed is True
    assert session.modified is False


async def test_asave_aexists_aload(session: SessionStore) -> None:
    await session.aset("a", [1, "two"])
    await session.asave()
    assert await session.aexists(session.session_key) is True
    assert await SessionStore(session.session_key).aload() == {"a": [1, "two"]}
    assert await session.aget("a") == [1, "two"]


async def test_acreate_stores_an_empty_session(session: SessionStore) -> None:
    await session.acreate()
    assert session.session_key is not None
    assert await session.aexists(session.session_key) is True


async def test_adelete(session: SessionStore, redisstore: str) -> None:
    await session.asave()
    await session.adelete(session.session_key)
    assert await session.aexists(session.session_key) is False
    assert await stored_names(redisstore) == []


async def test_aflush(session: SessionStore) -> None:
    await session.aset("foo", "bar")
    await session.asave()
    previous = session.session_key
    await session.aflush()
    assert await session.aexists(previous) is False
    assert session.session_key is None
    assert session.modified is True and session.accessed is True


async def test_acycle_key_keeps_data_under_a_new_key(session: SessionStore) -> None:
    await session.aset("a", "c")
    await session.aset("b", "d")
    await session.asave()
    previous = session.session_key
    data = list(await session.aitems())
    await session.acycle_key()
    assert session.session_key != previous
    assert await session.aexists(previous) is False
    assert list(await session.aitems()) == data
    assert list(await SessionStore(session.session_key).aitems()) == data


async def test_acycle_key_without_session_cache(session: SessionStore) -> None:
    await session.aset("a", "c")
    await session.asave()
    fresh = SessionStore(session.session_key)
    assert not hasattr(fresh, "_session_cache")
    await fresh.acycle_key()
    assert list(await fresh.aitems()) == [("a", "c")]
    assert await fresh.aexists(session.session_key) is False
    await fresh.adelete()


async def test_expiry_helpers(session: SessionStore, settings: Any) -> None:
    assert await session.aget_expiry_age() == settings.SESSION_COOKIE_AGE
    await session.aset_expiry(0)
    assert await session.aget_expiry_age() == settings.SESSION_COOKIE_AGE
    modification = timezone.now()
    await session.aset_expiry(10)
    assert await session.aget_expiry_age(modification=modification) == 10
    assert await session.aget_expiry_date(modification=modification) == modification + timedelta(
        seconds=10
    )
    await session.aset_expiry(modification + timedelta(seconds=20))
    assert await session.aget_expiry_age(modification=modification) == 20
    await session.aset_expiry(None)
    assert await session.aget_expiry_age() == settings.SESSION_COOKIE_AGE


async def test_aget_expire_at_browser_close(session: SessionStore) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        await session.aset_expiry(10)
        assert await session.aget_expire_at_browser_close() is False
        await session.aset_expiry(None)
        assert await session.aget_expire_at_browser_close() is True


async def test_asave_sets_ttl_to_expiry_age(session: SessionStore) -> None:
    await session.aset_expiry(600)
    await session.aset("a", 1)
    await session.asave()
    ttl = await clients.get_async_client().pttl(name_of(session.session_key))
    assert 599_000 < ttl <= 600_000


async def test_past_expiry_means_gone(session: SessionStore, redisstore: str) -> None:
    await session.aset("foo", "bar")
    await session.aset_expiry(-timedelta(seconds=10))
    await session.asave()
    assert await stored_names(redisstore) == []
    other = SessionStore(session.session_key)
    assert await other.ahas_key("foo") is False


async def test_aload_of_unknown_key_creates_nothing(redisstore: str) -> None:
    store = SessionStore("someunknownkey")
    assert await store.aload() == {}
    assert store.session_key is None
    assert await store.aexists(store.session_key) is False
    assert await stored_names(redisstore) == []


async def test_malformed_key_never_reaches_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> Any:
        raise AssertionError("a malformed key reached Redis")

    monkeypatch.setattr(flows, "get_async_client", forbidden)
    store = SessionStore("ü" * 40)
    assert store.session_key is None
    assert await store.aload() == {}
    assert await store.aexists("x" * 10_000) is False
    await store.adelete("short")


async def test_asave_after_adelete_elsewhere_raises_update_error(redisstore: str) -> None:
    first = SessionStore()
    await first.aset("test_data", "value1")
    await first.asave(must_create=True)
    await SessionStore(first.session_key).adelete()
    await first.aset("test_data", "value2")
    with pytest.raises(UpdateError):
        await first.asave()
    assert await stored_names(redisstore) == []
    assert await first.aload() == {}


async def test_acreate_never_overwrites_an_existing_key(
    session: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await session.aset("owner", "first")
    await session.asave()
    taken = session.session_key
    proposals: list[str] = []
    original = SessionStore._get_new_session_key

    def collide_first(self: SessionStore) -> str:
        key = taken if not proposals else original(self)
        assert key is not None
        proposals.append(key)
        return key

    monkeypatch.setattr(SessionStore, "_get_new_session_key", collide_first)
    intruder = SessionStore()
    await intruder.aset("owner", "second")
    await intruder.acreate()
    assert proposals[0] == taken and len(proposals) == 2
    assert intruder.session_key == proposals[1]
    assert await SessionStore(taken).aget("owner") == "first"
    await intruder.adelete()


async def test_tampered_record_is_logged_and_read_as_empty(
    session: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    await session.aset("role", "user")
    await session.asave()
    client = clients.get_async_client()
    name = name_of(session.session_key)
    blob = await client.get(name)
    await client.set(name, blob.replace(b'"user"', b'"root"'), keepttl=True)
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        assert await SessionStore(session.session_key).aget("role") is None
    assert any(r.name == "django.security.SuspiciousSession" for r in caplog.records)


async def test_aclear_expired_prunes_stale_index_entries_and_keeps_live_ones(
    session: SessionStore, redis_client: redis.Redis
) -> None:
    await session.aset(SESSION_KEY, "7")
    await session.asave()
    live = keys.session_id(str(session.session_key))
    redis_client.zadd(keys.user_index_name("7"), {"gone": 2**31})  # the test's own client

    await SessionStore.aclear_expired()

    assert index_members(redis_client, "7") == {live}
    assert await SessionStore(session.session_key).aget(SESSION_KEY) == "7"


# The storage methods this engine defines itself work on every supported Django, 4.2 included
# (where Django has no async session API of its own).


async def test_storage_methods_on_every_django(redisstore: str) -> None:
    store = SessionStore()
    await store.acreate()
    assert await store.aexists(store.session_key) is True
    store["a"] = 1
    await store.asave()
    previous = store.session_key
    await store.acycle_key()
    assert store.session_key != previous
    assert await store.aexists(previous) is False
    reloaded = SessionStore(store.session_key)
    assert await reloaded.aload() == {"a": 1}
    fresh = SessionStore(store.session_key)
    await fresh.acycle_key()  # loads through the async path first
    assert fresh["a"] == 1
    await fresh.adelete()
    assert await stored_names(redisstore) == []
    await store.acreate()
    store[SESSION_KEY] = "7"  # no I/O: the session was just created (no aset on Django 4.2)
    await store.asave()
    live = keys.session_id(str(store.session_key))
    index = clients.get_async_client()
    await index.zadd(keys.user_index_name("7"), {"gone": 2**31})
    await SessionStore.aclear_expired()  # keeps the live entry, drops the stale one
    assert await index.zrange(keys.user_index_name("7"), 0, -1) == [live.encode()]


async def test_asave_of_an_unread_unknown_key_creates_a_new_session() -> None:
    store = SessionStore("abcdefgh12345678")
    await store.asave()
    assert store.session_key not in (None, "abcdefgh12345678")
    assert await store.aexists(store.session_key) is True
    assert await store.aexists("abcdefgh12345678") is False
