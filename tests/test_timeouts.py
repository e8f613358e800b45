"""Idle and absolute timeouts: the Redis TTL, the record's cap and the cookie agree."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.test import Client

from django_redisstore import codec, keys, storage
from django_redisstore import session as session_module
from django_redisstore.session import SessionStore

from .django_versions import needs_async_api
from .redis_servers import RoundTrips


class Clock:
    """The engine's clock, ``offset`` seconds from the real one (Redis keeps real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(session_module, "time", clock)
    monkeypatch.setattr(storage, "time", clock)
    return clock


def name_of(session_key: str) -> str:
    return keys.session_name(keys.session_id(session_key))


def ttl(redis_client: redis.Redis, session_key: str) -> float:
    return int(redis_client.pttl(name_of(session_key))) / 1000


def saved(**data: Any) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session


# The engine ---------------------------------------------------------------------------------


def test_idle_timeout_is_the_age_of_sessions_without_their_own_expiry(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 120
    session = saved(a=1)
    assert session.get_expiry_age() == 120
    assert 118 <= ttl(redis_client, session.session_key) <= 120


def test_a_read_slides_the_ttl_back_to_the_idle_timeout_in_one_round_trip(
    settings: Any, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 120
    key = saved(a=1).session_key
    SessionStore(key).load()  # the server learns the script (EVALSHA's first miss costs a trip)
    redis_client.pexpire(name_of(key), 5000)  # as if it had been idle for almost two minutes
    round_trips.count = 0
    assert SessionStore(key)["a"] == 1
    assert round_trips.count == 1
    assert ttl(redis_client, key) >= 118


def test_without_an_idle_timeout_a_read_leaves_the_ttl_alone(
    redis_client: redis.Redis,
) -> None:
    key = saved(a=1).session_key
    redis_client.pexpire(name_of(key), 5000)
    assert SessionStore(key)["a"] == 1
    assert ttl(redis_client, key) <= 5


def test_an_unused_session_ends_after_the_idle_timeout(settings: Any) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 1
    key = saved(a=1).session_key
    time.sleep(1.2)  # Redis expires it by itself: nothing in the engine runs meanwhile
    assert SessionStore(key).load() == {}


def test_the_absolute_timeout_caps_the_ttl_the_expiry_and_the_record(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 600
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 60
    session = saved(a=1)
    assert 58 <= session.get_expiry_age() <= 60
    assert 58 <= ttl(redis_client, session.session_key) <= 60
    name = name_of(session.session_key)
    record = codec.unpack(name, redis_client.get(name), settings.SECRET_KEY)
    assert record.until == record.created + 60
    expiry = session.get_expiry_date().timestamp()
    assert abs(expiry - (time.time() + 60)) <= 2


def test_sliding_never_passes_the_absolute_deadline(
    settings: Any, redis_client: redis.Redis, clock: Clock
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 40
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 50
    clock.offset = -45  # created 45 s ago: 5 s of its lifetime are left
    key = saved(a=1).session_key
    clock.offset = 0
    session = SessionStore(key)
    assert session["a"] == 1
    assert ttl(redis_client, key) <= 6
    assert session.get_expiry_age() <= 6


def test_a_signed_in_sessions_index_score_is_capped_by_the_deadline(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 60
    session = saved(_auth_user_id="7")
    sid = keys.session_id(session.session_key)
    score = redis_client.zscore(keys.user_index_name("7"), sid)
    assert score is not None and score <= time.time() + 61


def test_a_session_past_its_absolute_lifetime_is_never_served(
    settings: Any, redis_client: redis.Redis, clock: Clock
) -> None:
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 1000
    clock.offset = -100
    key = saved(_auth_user_id="7", a=1).session_key
    clock.offset = 0
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 50  # lowered since: the TTL still says 900 s
    session = SessionStore(key)
    assert session.load() == {}
    assert session.session_key is None
    assert not redis_client.exists(name_of(key))
    assert redis_client.zcard(keys.user_index_name("7")) == 0


@needs_async_api
async def test_async_expiry_is_capped_too(settings: Any, redis_client: redis.Redis) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 600
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 60
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    assert 58 <= await session.aget_expiry_age() <= 60
    expiry = (await session.aget_expiry_date()).timestamp()
    assert abs(expiry - (time.time() + 60)) <= 2
    loaded = SessionStore(session.session_key)
    assert await loaded.aget("a") == 1
    assert 58 <= ttl(redis_client, session.session_key) <= 60


# Through SessionMiddleware: the cookie ------------------------------------------------------


def cookie_age(response: Any, settings: Any) -> int | None:
    cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
    if cookie is None:
        return None
    return int(cookie["max-age"]) if cookie["max-age"] != "" else -1


def test_a_sliding_read_resends_the_cookie_with_the_ttl_at_one_round_trip(
    client: Client, settings: Any, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 120
    response = client.get("/write/?a=1")
    assert cookie_age(response, settings) == 120
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.get("/read/")  # the server learns the sliding script
    redis_client.pexpire(name_of(key), 5000)
    round_trips.count = 0
    response = client.get("/read/")
    assert response.json() == {"a": "1"}
    assert round_trips.count == 1  # the slide rides on the read; the data is not rewritten
    assert cookie_age(response, settings) == 120
    assert abs(ttl(redis_client, key) - 120) <= 2


def test_a_change_after_a_sliding_read_is_still_saved(client: Client, settings: Any) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 120
    client.get("/write/?a=1")
    client.get("/write/?b=2")
    assert client.get("/read/").json() == {"a": "1", "b": "2"}


def test_a_browser_session_cookie_is_not_resent_on_a_read(
    client: Client, settings: Any, redis_client: redis.Redis, round_trips: RoundTrips
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 120
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    response = client.get("/write/?a=1")
    assert cookie_age(response, settings) == -1  # no Max-Age: it ends with the browser
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.get("/read/")  # the server learns the sliding script
    redis_client.pexpire(name_of(key), 5000)
    round_trips.count = 0
    response = client.get("/read/")
    assert round_trips.count == 1
    assert cookie_age(response, settings) is None
    assert abs(ttl(redis_client, key) - 120) <= 2


def test_the_cookie_ends_with_the_absolute_timeout(
    client: Client, settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_IDLE_TIMEOUT = 120
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 30
    response = client.get("/write/?a=1")
    age = cookie_age(response, settings)
    assert age is not None and 28 <= age <= 30
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert abs(ttl(redis_client, key) - age) <= 2


def test_bad_timeouts_are_reported_by_checks(settings: Any) -> None:
    from django_redisstore.checks import check_timeouts

    settings.REDISSTORE_IDLE_TIMEOUT = -5
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = "1 day"
    assert [m.id for m in check_timeouts()] == [
        "django_redisstore.E021",
        "django_redisstore.E022",
    ]
