"""``manage.py sessions import --from ENGINE``: keys, data and lifetimes survive the switch."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
import redis
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches
from django.core.management import CommandError
from django.test import override_settings

import django_redisstore
from django_redisstore import keys
from django_redisstore.session import SessionStore

from .command_helpers import sessions, sessions_json

SOURCE_DATA = {"_auth_user_id": "21", "cart": [1, 2, 3], "theme": "dark"}


def make_source_sessions(engine: str, count: int = 3) -> list[str]:
    store_class: type[SessionBase] = import_module(engine).SessionStore
    made = []
    for i in range(count):
        session = store_class()
        session.update(SOURCE_DATA)
        session["n"] = i
        session.set_expiry(3600)
        session.save()
        assert session.session_key is not None
        made.append(session.session_key)
    anonymous = store_class()
    anonymous["cart"] = []
    anonymous.set_expiry(600)
    anonymous.save()
    assert anonymous.session_key is not None
    return [*made, anonymous.session_key]


def assert_imported(
    session_keys: list[str], redis_client: redis.Redis, lifetimes: tuple[int, ...] = (3600, 600)
) -> None:
    for i, key in enumerate(session_keys):
        data = SessionStore(key).load()
        ttl = redis_client.ttl(keys.session_name(keys.session_id(key)))
        if i < len(session_keys) - 1:
            assert data == {**SOURCE_DATA, "n": i, "_session_expiry": 3600}
            assert lifetimes[0] - 5 <= ttl <= lifetimes[0]
        else:
            assert data == {"cart": [], "_session_expiry": 600}
            assert lifetimes[1] - 5 <= ttl <= lifetimes[1]
    users = {info.id for info in django_redisstore.user_sessions(21)}
    assert users == {keys.session_id(k) for k in session_keys[:-1]}


def check_import(source: str, session_keys: list[str], redis_client: redis.Redis, *extra: str):  # type: ignore[no-untyped-def]
    dry = sessions_json("import", "--from", source, "--dry-run", *extra)
    assert dry["imported"] == len(session_keys) and dry["dry_run"] is True
    assert not SessionStore().exists(session_keys[0])

    assert sessions("import", "--from", source, *extra).startswith(
        f"Imported {len(session_keys)} sessions (0 already here"
    )
    assert_imported(session_keys, redis_client)

    again = sessions_json("import", "--from", source, *extra)
    assert again["imported"] == 0 and again["present"] == len(session_keys)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["db", "cached_db"])
def test_import_from_django_database_engines(engine: str, redis_client: redis.Redis) -> None:
    session_keys = make_source_sessions(f"django.contrib.sessions.backends.{engine}")

    check_import(engine, session_keys, redis_client)


@pytest.mark.django_db
def test_import_from_the_db_engine_skips_expired_and_tampered_rows(
    redis_client: redis.Redis,
) -> None:
    from django.contrib.sessions.models import Session

    session_keys = make_source_sessions("django.contrib.sessions.backends.db", count=1)
    tampered = Session.objects.get(session_key=session_keys[0])
    tampered.session_data = tampered.session_data[:-3] + "xyz"
    tampered.save()

    result = sessions_json("import", "--from", "django.contrib.sessions.backends.db")

    assert result["imported"] == 1 and result["skipped"] == 1
    assert not SessionStore().exists(session_keys[0])


@pytest.fixture
def django_redis_cache(redis_server_url: str, redisstore: str) -> Iterator[str]:
    """A django-redis cache on the test server, its keys under the test's prefix."""
    config = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": redis_server_url,
        "KEY_PREFIX": f"{redisstore}:cache",
    }
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        | {"sessions": config},
        SESSION_CACHE_ALIAS="sessions",
    ):
        yield "sessions"
        caches["sessions"].close()


def test_import_from_the_cache_engine_on_django_redis(
    django_redis_cache: str, redis_client: redis.Redis
) -> None:
    session_keys = make_source_sessions("django.contrib.sessions.backends.cache")

    check_import("cache", session_keys, redis_client, "--cache-alias", django_redis_cache)


def test_import_from_a_cache_that_is_not_django_redis_is_refused() -> None:
    with pytest.raises(CommandError, match="not a django-redis cache"):
        sessions("import", "--from", "cache", "--cache-alias", "default")


@pytest.fixture
def redis_sessions_settings(
    redis_server_url: str, redisstore: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """django-redis-sessions reads its settings once, at import: point them at the test server."""
    from redis_sessions import settings as rs_settings

    monkeypatch.setattr(rs_settings, "SESSION_REDIS_URL", redis_server_url)
    monkeypatch.setattr(rs_settings, "SESSION_REDIS_PREFIX", f"{redisstore}:rs")
    return rs_settings


# django-redis-sessions (last release 2021) writes with a command redis-py 8 deprecates.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_import_from_django_redis_sessions(
    redis_sessions_settings: Any, redis_client: redis.Redis, redisstore: str
) -> None:
    session_keys = make_source_sessions("redis_sessions.session")
    redis_client.set(f"{redisstore}:rs:notasessionatall1", b"garbage", ex=60)
    redis_client.set(f"{redisstore}:rs:Not-A-Key", b"ignored", ex=60)

    check_import("redis_sessions", session_keys, redis_client)
    assert sessions_json("import", "--from", "redis_sessions")["skipped"] == 1


def test_unknown_engine_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="cannot import from 'file'"):
        sessions("import", "--from", "file")
