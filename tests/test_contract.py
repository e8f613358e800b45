"""Django's session-backend contract, sync API, against a real Redis server.

Each behaviour that Django's own ``SessionTestsMixin`` (django/tests/sessions_tests/tests.py)
checks has a test here, written for this engine, plus what the contract means for a store that
lives in Redis: nothing stored for an unknown or malformed key, ``SET NX`` for creation, no
resurrection of a session deleted elsewhere. Every test runs with ``USE_TZ`` on and off.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from django_redisstore import flows, keys
from django_redisstore.session import SessionStore

from .contract import index_members


@pytest.fixture(autouse=True, params=[True, False], ids=["tz", "naive"])
def use_tz(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.USE_TZ = request.param
    return bool(request.param)


@pytest.fixture
def session() -> Iterator[SessionStore]:
    store = SessionStore()
    yield store
    store.delete()


def stored_names(client: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(f"{prefix}:*"))


def name_of(session_key: str | None) -> str:
    assert session_key is not None
    return keys.session_name(keys.session_id(session_key))


# A new session and its dict-like API ---------------------------------------------------------


def test_new_session_is_neither_modified_nor_accessed(session: SessionStore) -> None:
    assert session.modified is False
    assert session.accessed is False
    assert session.session_key is None


def test_get_on_empty_session_returns_none(session: SessionStore) -> None:
    assert session.get("cat") is None


def test_setitem_marks_modified_and_pop_returns_value(session: SessionStore) -> None:
    session["cat"] = "dog"
    assert session.modified is True
    assert session.pop("cat") == "dog"


def test_pop_marks_accessed_and_modified(session: SessionStore) -> None:
    session["some key"] = "exists"
    session.accessed = False
    session.modified = False
    assert session.pop("some key") == "exists"
    assert session.accessed is True
    assert session.modified is True
    assert session.get("some key") is None


def test_pop_with_default_of_missing_key_does_not_modify(session: SessionStore) -> None:
    assert session.pop("missing", "default") == "default"
    assert session.pop("missing", default="named") == "named"
    assert session.accessed is True
    assert session.modified is False


def test_pop_of_missing_key_without_default_raises_key_error(session: SessionStore) -> None:
    with pytest.raises(KeyError):
        session.pop("missing")


def test_setdefault_sets_only_once(session: SessionStore) -> None:
    assert session.setdefault("foo", "bar") == "bar"
    assert session.setdefault("foo", "baz") == "bar"
    assert session.accessed is True
    assert session.modified is True


def test_update_marks_modified(session: SessionStore) -> None:
    session.update({"update key": 1})
    assert session.accessed is True
    assert session.modified is True
    assert session.get("update key") == 1


def test_has_key_and_contains(session: SessionStore) -> None:
    session["some key"] = 1
    session.modified = False
    session.accessed = False
    assert session.has_key("some key")
    assert "some key" in session
    assert "other key" not in session
    assert session.accessed is True
    assert session.modified is False


def test_keys_values_items_do_not_modify(session: SessionStore) -> None:
    session["x"] = 1
    session.modified = False
    session.accessed = False
    assert list(session.keys()) == ["x"]
    assert list(session.values()) == [1]
    assert list(session.items()) == [("x", 1)]
    assert session.accessed is True
    assert session.modified is False


def test_clear_empties_and_marks_modified(session: SessionStore) -> None:
    session["x"] = 1
    session.modified = False
    session.accessed = False
    assert list(session.items()) == [("x", 1)]
    session.clear()
    assert list(session.items()) == []
    assert session.accessed is True
    assert session.modified is True


# Storage: save, delete, flush, cycle_key -----------------------------------------------------


def test_save_stores_a_session_that_exists(session: SessionStore) -> None:
    session.save()
    assert session.exists(session.session_key) is True
    assert SessionStore(session.session_key).load() == {}


def test_saved_data_reads_back_in_a_new_store(session: SessionStore) -> None:
    session["a"] = [1, "two", {"three": 3}]
    session.save()
    assert SessionStore(session.session_key)["a"] == [1, "two", {"three": 3}]


def test_save_does_not_clear_data(session: SessionStore) -> None:
    session["a"] = "b"
    session.save()
    assert session["a"] == "b"


def test_delete_removes_the_session(session: SessionStore) -> None:
    session.save()
    session.delete(session.session_key)
    assert session.exists(session.session_key) is False


def test_delete_without_argument_removes_the_current_session(
    session: SessionStore, redis_client: redis.Redis, redisstore: str
) -> None:
    session["a"] = 1
    session.save()
    session.delete()
    assert stored_names(redis_client, redisstore) == []


def test_flush_removes_data_and_key(session: SessionStore) -> None:
    session["foo"] = "bar"
    session.save()
    previous = session.session_key
    session.flush()
    assert session.exists(previous) is False
    assert session.session_key is None
    assert session.modified is True
    assert session.accessed is True
    assert session.get("foo") is None


def test_cycle_key_keeps_data_under_a_new_key(
    session: SessionStore, redis_client: redis.Redis
) -> None:
    session["a"], session["b"] = "c", "d"
    session.save()
    previous = session.session_key
    data = list(session.items())
    session.cycle_key()
    assert session.session_key != previous
    assert session.exists(previous) is False
    assert redis_client.exists(name_of(previous)) == 0
    assert list(session.items()) == data
    assert list(SessionStore(session.session_key).items()) == data


def test_cycle_key_without_session_cache_loads_first(session: SessionStore) -> None:
    session["a"], session["b"] = "c", "d"
    session.save()
    data = list(session.items())
    fresh = SessionStore(session.session_key)
    assert not hasattr(fresh, "_session_cache")
    fresh.cycle_key()
    assert fresh.session_key != session.session_key
    assert sorted(fresh.items()) == sorted(data)
    assert sorted(SessionStore(fresh.session_key).items()) == sorted(data)
    assert fresh.exists(session.session_key) is False
    fresh.delete()


# Expiry ------------------------------------------------------------------------------------


def test_default_expiry_is_session_cookie_age(session: SessionStore, settings: Any) -> None:
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE
    session.set_expiry(0)  # until the browser closes: aged as SESSION_COOKIE_AGE
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_custom_expiry_in_seconds(session: SessionStore) -> None:
    modification = timezone.now()
    session.set_expiry(10)
    assert session.get_expiry_date(modification=modification) == modification + timedelta(
        seconds=10
    )
    assert session.get_expiry_age(modification=modification) == 10


def test_custom_expiry_as_timedelta(
    session: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    modification = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: modification)
    session.set_expiry(timedelta(seconds=10))
    monkeypatch.undo()
    assert session.get_expiry_date(modification=modification) == modification + timedelta(
        seconds=10
    )
    assert session.get_expiry_age(modification=modification) == 10


def test_custom_expiry_as_datetime(session: SessionStore) -> None:
    modification = timezone.now()
    session.set_expiry(modification + timedelta(seconds=10))
    assert session.get_expiry_date(modification=modification) == modification + timedelta(
        seconds=10
    )
    assert session.get_expiry_age(modification=modification) == 10


def test_custom_expiry_survives_a_save_and_load(session: SessionStore) -> None:
    session.set_expiry(1234)
    session.save()
    assert SessionStore(session.session_key).get_expiry_age() == 1234


def test_set_expiry_none_resets_to_default(session: SessionStore, settings: Any) -> None:
    session.set_expiry(None)
    session.set_expiry(10)
    session.set_expiry(None)
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE


@pytest.mark.parametrize("at_close", [False, True])
def test_get_expire_at_browser_close(session: SessionStore, at_close: bool) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=at_close):
        session.set_expiry(10)
        assert session.get_expire_at_browser_close() is False
        session.set_expiry(0)
        assert session.get_expire_at_browser_close() is True
        session.set_expiry(None)
        assert session.get_expire_at_browser_close() is at_close


def test_get_expiry_date_defaults_to_now_plus_cookie_age(
    session: SessionStore, settings: Any, use_tz: bool
) -> None:
    before = timezone.now()
    date = session.get_expiry_date()
    after = timezone.now()
    age = timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert before + age <= date <= after + age
    assert timezone.is_aware(date) is use_tz


def test_session_with_expiry_in_the_past_is_gone(
    session: SessionStore, redis_client: redis.Redis, redisstore: str
) -> None:
    session["foo"] = "bar"
    session.set_expiry(-timedelta(seconds=10))
    session.save()
    assert stored_names(redis_client, redisstore) == []
    reloaded = SessionStore(session.session_key)
    assert "foo" not in reloaded
    assert reloaded.session_key is None


def test_saving_an_existing_session_with_past_expiry_deletes_it(
    session: SessionStore, redis_client: redis.Redis, redisstore: str
) -> None:
    session["foo"] = "bar"
    session.save()
    session.set_expiry(-1)
    session.save()
    assert stored_names(redis_client, redisstore) == []
    assert session.exists(session.session_key) is False


# Codec: Django's encode/decode still work, failures are logged ---------------------------------


def test_decode_reverses_encode(session: SessionStore) -> None:
    data = {"a test key": "a test value"}
    assert session.decode(session.encode(data)) == data


@pytest.mark.parametrize(
    "encoded", [base64.b64encode(b"flaskdj:alkdjf").decode("ascii"), "bad:encoded:value"]
)
def test_decode_failure_is_logged_to_security(
    session: SessionStore, encoded: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        assert session.decode(encoded) == {}
    records = [r for r in caplog.records if r.name == "django.security.SuspiciousSession"]
    assert records and "Session data corrupted" in records[0].getMessage()


def test_tampered_record_is_logged_and_read_as_empty(
    session: SessionStore, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    session["role"] = "user"
    session.save()
    name = name_of(session.session_key)
    blob = redis_client.get(name)
    assert blob is not None
    redis_client.set(name, blob.replace(b'"user"', b'"root"'), keepttl=True)
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        reloaded = SessionStore(session.session_key)
        assert reloaded.get("role") is None
    assert reloaded.session_key is None
    assert any(r.name == "django.security.SuspiciousSession" for r in caplog.records)


# Unknown and malformed keys ----------------------------------------------------------------


def test_loading_an_unknown_key_creates_nothing(
    redis_client: redis.Redis, redisstore: str
) -> None:
    store = SessionStore("someunknownkey")
    assert store.load() == {}
    assert store.session_key is None
    assert store.exists(store.session_key) is False
    assert stored_names(redis_client, redisstore) == []


def test_saving_after_loading_an_unknown_key_uses_a_new_key(
    redis_client: redis.Redis, redisstore: str
) -> None:
    store = SessionStore("someunknownkey")
    store["a"] = 1
    store.save()
    assert store.session_key not in (None, "someunknownkey")
    assert store.exists("someunknownkey") is False
    assert redis_client.exists(name_of("someunknownkey")) == 0
    store.delete()


@pytest.mark.parametrize(
    "bad_key",
    ["", "1", "1234567", "ünïcödé-key-ünïcödé", "x" * 100_000, "abc/../../etc", "KEY WITH SPACE"],
    ids=["empty", "one-char", "seven-chars", "non-ascii", "huge", "path", "spaces"],
)
def test_malformed_key_is_never_sent_to_redis(
    bad_key: str, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, redisstore: str
) -> None:
    def no_redis() -> None:
        raise AssertionError("a malformed key reached Redis")

    monkeypatch.setattr(flows, "get_client", no_redis)
    store = SessionStore(bad_key)
    assert store.session_key is None
    assert store.load() == {}
    assert store.get("anything") is None
    assert store.exists(bad_key) is False
    store.delete(bad_key)
    monkeypatch.undo()
    assert stored_names(redis_client, redisstore) == []


def test_invalid_key_gets_replaced_on_save(session: SessionStore) -> None:
    store = SessionStore("1")
    store.save()
    assert store.session_key not in (None, "1")
    assert store.get("cat") is None
    store.delete()


def test_session_key_is_read_only(session: SessionStore) -> None:
    with pytest.raises(AttributeError):
        session.session_key = "abcdefgh12345678"  # type: ignore[misc]


# Concurrent contexts: no resurrection, no overwrite --------------------------------------------


def test_save_after_delete_elsewhere_raises_update_error(
    redis_client: redis.Redis, redisstore: str
) -> None:
    first = SessionStore()
    first["test_data"] = "value1"
    first.save(must_create=True)
    SessionStore(first.session_key).delete()
    first["test_data"] = "value2"
    with pytest.raises(UpdateError):
        first.save()
    assert stored_names(redis_client, redisstore) == []
    assert first.load() == {}


def test_exists_returns_a_real_bool(session: SessionStore) -> None:
    assert session.exists("nosuchsessionkey") is False
    session.save()
    assert session.exists(session.session_key) is True


def test_create_never_overwrites_an_existing_key(
    session: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    session["owner"] = "first"
    session.save()
    taken = session.session_key
    assert taken is not None
    proposals: list[str] = []
    original = SessionStore._get_new_session_key

    def collide_first(self: SessionStore) -> str:
        key = taken if not proposals else original(self)
        proposals.append(key)
        return key

    monkeypatch.setattr(SessionStore, "_get_new_session_key", collide_first)
    intruder = SessionStore()
    intruder["owner"] = "second"
    intruder.create()
    assert proposals[0] == taken
    assert len(proposals) == 2
    assert intruder.session_key == proposals[1] != taken
    assert SessionStore(taken)["owner"] == "first"
    intruder.save()
    assert SessionStore(intruder.session_key)["owner"] == "second"
    intruder.delete()


def test_save_must_create_on_a_taken_key_picks_another(
    session: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    session["owner"] = "first"
    session.save()
    taken = session.session_key
    assert taken is not None
    calls = iter([taken])
    original = SessionStore._get_new_session_key
    monkeypatch.setattr(
        SessionStore, "_get_new_session_key", lambda self: next(calls, None) or original(self)
    )
    other = SessionStore()
    other["owner"] = "second"
    other.save(must_create=True)
    assert other.session_key != taken
    assert SessionStore(taken)["owner"] == "first"
    other.delete()


def test_clear_expired_prunes_stale_index_entries_and_keeps_live_ones(
    session: SessionStore, redis_client: redis.Redis
) -> None:
    session[SESSION_KEY] = "7"
    session.save()
    live = keys.session_id(str(session.session_key))
    redis_client.zadd(keys.user_index_name("7"), {"gone": 2**31})  # its session ended unseen

    SessionStore.clear_expired()

    assert index_members(redis_client, "7") == {live}
    assert SessionStore(session.session_key)[SESSION_KEY] == "7"


async def test_aclear_expired_prunes_stale_index_entries_and_keeps_live_ones(
    session: SessionStore, redis_client: redis.Redis
) -> None:
    session[SESSION_KEY] = "7"
    await session.asave()
    live = keys.session_id(str(session.session_key))
    redis_client.zadd(keys.user_index_name("7"), {"gone": 2**31})

    await SessionStore.aclear_expired()

    assert index_members(redis_client, "7") == {live}
    assert SessionStore(session.session_key)[SESSION_KEY] == "7"


def test_aware_and_naive_datetime_expiry_round_trip(session: SessionStore, use_tz: bool) -> None:
    when = timezone.now() + timedelta(minutes=5)
    assert isinstance(when, datetime)
    session.set_expiry(when)
    session.save()
    assert SessionStore(session.session_key).get_expiry_date() == when


def test_clearsessions_command_runs(session: SessionStore) -> None:
    session["a"] = 1
    session.save()
    call_command("clearsessions")
    assert SessionStore(session.session_key)["a"] == 1


# Old CVEs: nothing is stored for an unknown key, on read or logout ---------------------------


@pytest.mark.parametrize("path", ["/read/", "/logout/", "/untouched/"])
def test_unknown_cookie_stores_nothing(
    path: str, settings: Any, redis_client: redis.Redis, redisstore: str
) -> None:
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = "unknownsessionkey000000000000000"
    assert browser.get(path).status_code == 200
    assert stored_names(redis_client, redisstore) == []


def test_flush_of_an_unsaved_session_stores_nothing(
    redis_client: redis.Redis, redisstore: str
) -> None:
    store = SessionStore("unknownsessionkey000000000000000")
    store.flush()
    assert store.session_key is None
    assert stored_names(redis_client, redisstore) == []


def test_logout_deletes_the_stored_session(
    settings: Any, redis_client: redis.Redis, redisstore: str
) -> None:
    browser = Client()
    browser.get("/write/", {"a": "1"})
    assert len(stored_names(redis_client, redisstore)) == 1
    assert browser.get("/logout/").status_code == 200
    assert stored_names(redis_client, redisstore) == []
    assert browser.cookies[settings.SESSION_COOKIE_NAME].value == ""


def test_save_of_an_unread_unknown_key_creates_a_new_session(redis_client: redis.Redis) -> None:
    # save() reads first; when that read finds nothing, the key is dropped and a new one made.
    store = SessionStore("abcdefgh12345678")
    store.save()
    assert store.session_key not in (None, "abcdefgh12345678")
    assert redis_client.exists(name_of(store.session_key)) == 1
    assert redis_client.exists(name_of("abcdefgh12345678")) == 0
