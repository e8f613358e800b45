"""The failure policy: what a request gets when Redis is down, stalled or cut off.

Every test reaches the suite's real Redis through ``tests.tcp_proxy.TcpProxy``, which refuses,
stalls or cuts connections on demand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import caches
from django.test import AsyncClient, Client
from redis.backoff import NoBackoff
from redis.retry import Retry

from django_redisstore import clients, codec, keys
from django_redisstore.exceptions import ConnectionInterrupted, SessionTooLarge
from django_redisstore.session import SessionStore
from django_redisstore.unavailable import PAGE

from .command_helpers import saved_key
from .django_versions import needs_async_api
from .faults import MIDDLEWARE_503, proxied
from .tcp_proxy import FORWARD, REFUSE, STALL, TcpProxy


@pytest.fixture
def proxy(settings: Any, redis_server_url: str) -> Iterator[TcpProxy]:
    with proxied(settings, redis_server_url) as proxy:
        yield proxy


def cookie_client(session_key: str) -> Client:
    client = Client(raise_request_exception=True)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session_key
    return client


def assert_cookie_kept(response: Any, session_key: str) -> None:
    """The response neither deletes the session cookie nor replaces its value."""
    cookie = response.cookies.get(django_settings.SESSION_COOKIE_NAME)
    assert cookie is None or (cookie.value == session_key and cookie["max-age"] != 0)


# Default policy: raise --------------------------------------------------------------------------


def test_outage_raises_connection_interrupted_naming_the_server_not_the_password(
    proxy: TcpProxy, settings: Any
) -> None:
    settings.REDISSTORE_URL = f"redis://:hunter2@127.0.0.1:{proxy.port}/0"
    key = "a" * 32
    proxy.set_mode(REFUSE)
    with pytest.raises(ConnectionInterrupted) as raised:
        SessionStore(key).load()
    assert f"127.0.0.1:{proxy.port}" in str(raised.value)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_broken_connections_are_redialled_a_bounded_number_of_times(
    proxy: TcpProxy, settings: Any, retries: int
) -> None:
    # redis-py retries the command, and inside each attempt the dial: depending on whether the
    # reset arrives during the handshake or the command, one operation dials between
    # RETRIES + 1 and (RETRIES + 1) ** 2 times. Never more, and once when RETRIES is 0.
    settings.REDISSTORE_RETRIES = retries
    proxy.set_mode(REFUSE)
    with pytest.raises(ConnectionInterrupted, match="unreachable"):
        SessionStore("a" * 32).load()
    # redis-py 5 dials a new connection outside its retry loop: a reset handshake is not redialled.
    least = retries + 1 if redis.VERSION >= (6,) else 1
    assert least <= proxy.accepted <= (retries + 1) ** 2


def test_a_connection_cut_between_requests_costs_no_error(proxy: TcpProxy) -> None:
    key = saved_key(a=1)
    for round_ in range(5):
        proxy.cut()
        assert SessionStore(key).load() == {"a": 1 + round_}
        session = SessionStore(key)
        session["a"] = 2 + round_
        session.save()


def test_a_stalled_redis_times_out_once_without_retrying(proxy: TcpProxy) -> None:
    key = saved_key(a=1)
    proxy.cut()
    proxy.set_mode(STALL)
    before = proxy.accepted
    with pytest.raises(ConnectionInterrupted, match="timed out"):
        SessionStore(key).load()
    assert proxy.accepted == before + 1
    proxy.set_mode(FORWARD)
    assert SessionStore(key).load() == {"a": 1}


def test_stalled_save_raises_and_the_next_request_reads_what_was_stored(
    proxy: TcpProxy,
) -> None:
    key = saved_key(a=1)
    session = SessionStore(key)
    session["b"] = 2
    session.load()
    proxy.set_mode(STALL)
    with pytest.raises(ConnectionInterrupted, match="timed out"):
        session.save()
    proxy.set_mode(FORWARD)
    proxy.cut()
    assert SessionStore(key).load() == {"a": 1}


def test_without_the_middleware_the_error_reaches_the_request(proxy: TcpProxy) -> None:
    key = saved_key(a=1)
    proxy.set_mode(REFUSE)
    with pytest.raises(ConnectionInterrupted):
        cookie_client(key).get("/read/")


# The middleware: 503 ---------------------------------------------------------------------------


def test_middleware_answers_503_with_retry_after_and_keeps_the_cookie(
    proxy: TcpProxy, settings: Any
) -> None:
    settings.MIDDLEWARE = MIDDLEWARE_503
    settings.REDISSTORE_RETRY_AFTER = 7
    key = saved_key(a="1")
    client = cookie_client(key)
    proxy.set_mode(REFUSE)
    response = client.get("/read/")
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == PAGE
    assert_cookie_kept(response, key)
    proxy.set_mode(FORWARD)  # Redis is back: the same process serves the session again
    response = client.get("/read/")
    assert response.status_code == 200
    assert json.loads(response.content) == {"a": "1"}


def test_middleware_answers_503_when_the_save_after_the_view_fails(
    proxy: TcpProxy, settings: Any
) -> None:
    settings.MIDDLEWARE = MIDDLEWARE_503
    proxy.set_mode(REFUSE)
    response = Client(raise_request_exception=True).get("/write/", {"a": "1"})
    assert response.status_code == 503
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies


def touch_user(get_response: Any) -> Any:
    """A middleware that reads the session before the view, as many do through ``request.user``
    (a "last seen" stamp, a per-user feature flag)."""

    def middleware(request: Any) -> Any:
        request.user.is_authenticated  # noqa: B018 (loads the session)
        return get_response(request)

    return middleware


#: Session middleware, then middlewares that read the session before any view runs.
READ_BEFORE_VIEW = {
    "request.user": [*MIDDLEWARE_503, "tests.test_policy.touch_user"],
    "CSRF_USE_SESSIONS": [*MIDDLEWARE_503, "django.middleware.csrf.CsrfViewMiddleware"],
}


@pytest.mark.parametrize("stack", sorted(READ_BEFORE_VIEW))
def test_middleware_answers_503_when_a_middleware_reads_the_session_before_the_view(
    proxy: TcpProxy, settings: Any, stack: str
) -> None:
    settings.MIDDLEWARE = READ_BEFORE_VIEW[stack]
    settings.CSRF_USE_SESSIONS = True
    key = saved_key(a="1")
    # Django made a 500 inside the stack first, and reports it: the test client would re-raise.
    client = Client(raise_request_exception=False)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = key
    proxy.set_mode(REFUSE)
    response = client.get("/read/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.content.decode() == PAGE
    assert_cookie_kept(response, key)
    proxy.set_mode(FORWARD)
    assert json.loads(client.get("/read/").content) == {"a": "1"}


# Opt-in degraded mode: anonymous ---------------------------------------------------------------


def test_anonymous_mode_serves_an_empty_session_and_keeps_cookie_and_record(
    proxy: TcpProxy, settings: Any, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    key = saved_key(a="1")
    name = keys.session_name(keys.session_id(key))
    stored = redis_client.get(name)
    client = cookie_client(key)
    proxy.set_mode(REFUSE)
    with caplog.at_level(logging.WARNING, "django_redisstore"):
        response = client.get("/write/", {"b": "2"})
    assert response.status_code == 200
    assert json.loads(response.content) == {"b": "2"}  # the view saw no stored data
    assert_cookie_kept(response, key)
    assert "without its session" in caplog.text
    proxy.set_mode(FORWARD)
    assert redis_client.get(name) == stored
    response = client.get("/read/")
    assert json.loads(response.content) == {"a": "1"}


def test_anonymous_mode_never_saves_even_when_redis_is_back_before_the_save(
    proxy: TcpProxy, settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    settings.SESSION_SAVE_EVERY_REQUEST = True
    key = saved_key(a=1)
    name = keys.session_name(keys.session_id(key))
    stored = redis_client.get(name)
    proxy.set_mode(REFUSE)
    session = SessionStore(key)
    session["b"] = 2
    assert not session.modified  # so SessionMiddleware neither saves nor rewrites the cookie
    assert not session.is_empty()  # so SessionMiddleware does not delete the cookie
    proxy.set_mode(FORWARD)
    session.save()
    assert redis_client.get(name) == stored


def test_anonymous_mode_with_save_every_request_leaves_the_cookie_and_record_alone(
    proxy: TcpProxy, settings: Any, redis_client: redis.Redis
) -> None:
    # SessionMiddleware would re-send the cookie with the default age (two weeks) for a session
    # that the browser keeps for one hour: RedisUnavailableMiddleware sends no cookie at all.
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    settings.SESSION_SAVE_EVERY_REQUEST = True
    settings.MIDDLEWARE = MIDDLEWARE_503
    session = SessionStore()
    session["a"] = "1"
    session.set_expiry(3600)
    session.save()
    key = session.session_key or ""
    name = keys.session_name(keys.session_id(key))
    stored, ttl = redis_client.get(name), redis_client.ttl(name)
    client = cookie_client(key)
    proxy.set_mode(REFUSE)
    response = client.get("/write/", {"b": "2"})
    assert response.status_code == 200
    assert json.loads(response.content) == {"b": "2"}
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies
    assert "Cookie" in response["Vary"]
    proxy.set_mode(FORWARD)
    assert redis_client.get(name) == stored
    assert 0 < redis_client.ttl(name) <= ttl
    response = client.get("/read/")  # Redis is back: saved every request, with its own age
    assert json.loads(response.content) == {"a": "1", "_session_expiry": 3600}
    assert 3590 < response.cookies[django_settings.SESSION_COOKIE_NAME]["max-age"] <= 3600


@pytest.mark.parametrize("operation", ["flush", "cycle_key", "create"])
def test_anonymous_mode_refuses_to_end_or_rekey_a_session_it_could_not_read(
    proxy: TcpProxy, settings: Any, redis_client: redis.Redis, operation: str
) -> None:
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    key = saved_key(a=1)
    proxy.set_mode(REFUSE)
    session = SessionStore(key)
    assert session.get("a") is None
    proxy.set_mode(FORWARD)
    with pytest.raises(ConnectionInterrupted, match="failed to read"):
        getattr(session, operation)()
    assert SessionStore(key).load() == {"a": 1}
    assert redis_client.exists(keys.session_name(keys.session_id(key)))


def test_anonymous_mode_logout_during_an_outage_answers_503_and_keeps_the_session(
    proxy: TcpProxy, settings: Any
) -> None:
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    settings.MIDDLEWARE = MIDDLEWARE_503
    key = saved_key(a="1")
    client = cookie_client(key)
    proxy.set_mode(REFUSE)
    response = client.get("/logout/")
    assert response.status_code == 503
    assert_cookie_kept(response, key)
    proxy.set_mode(FORWARD)
    assert SessionStore(key).load() == {"a": "1"}


def test_anonymous_mode_does_not_hide_errors_of_a_new_session(
    proxy: TcpProxy, settings: Any
) -> None:
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    proxy.set_mode(REFUSE)
    session = SessionStore()
    session["a"] = 1
    with pytest.raises(ConnectionInterrupted):
        session.save()


@needs_async_api
async def test_async_anonymous_mode_serves_empty_and_never_saves(
    proxy: TcpProxy, settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    key = saved_key(a=1)
    name = keys.session_name(keys.session_id(key))
    stored = redis_client.get(name)
    proxy.set_mode(REFUSE)
    session = SessionStore(key)
    assert await session.aget("a") is None
    await session.aset("b", 2)
    proxy.set_mode(FORWARD)
    await session.asave()
    with pytest.raises(ConnectionInterrupted):
        await session.aflush()
    assert redis_client.get(name) == stored


@needs_async_api
@pytest.mark.parametrize("retries", [0, 3])
async def test_async_broken_connections_are_redialled_a_bounded_number_of_times(
    proxy: TcpProxy, settings: Any, retries: int
) -> None:
    settings.REDISSTORE_RETRIES = retries
    proxy.set_mode(REFUSE)
    with pytest.raises(ConnectionInterrupted, match="unreachable"):
        await SessionStore("a" * 32).aload()
    # redis-py 5 dials a new connection outside its retry loop: a reset handshake is not redialled.
    least = retries + 1 if redis.VERSION >= (6,) else 1
    assert least <= proxy.accepted <= (retries + 1) ** 2


@pytest.fixture
def borrowed(proxy: TcpProxy, settings: Any) -> TcpProxy:
    """The engine on a django-redis cache's client (REDISSTORE_CACHE_ALIAS) through the proxy:
    the cache retries once, REDISSTORE_RETRIES says 5."""
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_CACHE_ALIAS = "sessions"
    settings.REDISSTORE_RETRIES = 5
    pool_options = {"retry": Retry(NoBackoff(), 1), "socket_connect_timeout": 0.3}
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{proxy.port}/0",
            "OPTIONS": {"CONNECTION_POOL_KWARGS": pool_options},
        },
    }
    return proxy


def test_a_borrowed_client_retries_as_its_cache_says_not_as_redisstore_retries(
    borrowed: TcpProxy,
) -> None:
    # The pool and its connections are the cache's: their retries are the cache's (one), for
    # the cache and the sessions alike. REDISSTORE_RETRIES (5) would dial at least 6 times.
    assert clients.get_client() is caches["sessions"].client.get_client(write=True)  # type: ignore[attr-defined]
    borrowed.set_mode(REFUSE)
    with pytest.raises(ConnectionInterrupted, match="unreachable"):
        SessionStore("a" * 32).load()
    least = 2 if redis.VERSION >= (6,) else 1  # as in the test of REDISSTORE_RETRIES above
    assert least <= borrowed.accepted <= (1 + 1) ** 2


@needs_async_api
async def test_a_borrowed_client_retries_as_its_cache_says_under_asgi_too(
    borrowed: TcpProxy,
) -> None:
    # The async API opens a pool of its own to the cache's server, with the cache's retries.
    borrowed.set_mode(REFUSE)
    with pytest.raises(ConnectionInterrupted, match="unreachable"):
        await SessionStore("a" * 32).aload()
    least = 2 if redis.VERSION >= (6,) else 1
    assert least <= borrowed.accepted <= (1 + 1) ** 2


@needs_async_api
async def test_async_stall_times_out_and_service_comes_back(proxy: TcpProxy) -> None:
    key = saved_key(a=1)
    proxy.cut()
    proxy.set_mode(STALL)
    with pytest.raises(ConnectionInterrupted, match="timed out"):
        await SessionStore(key).aload()
    proxy.set_mode(FORWARD)
    assert await SessionStore(key).aload() == {"a": 1}


# Size limit ------------------------------------------------------------------------------------


def test_session_over_max_size_is_refused_before_anything_is_sent(
    settings: Any, redis_client: redis.Redis, redisstore: str, round_trips: Any
) -> None:
    settings.REDISSTORE_MAX_SIZE = 1000
    key = saved_key(a=1)
    name = keys.session_name(keys.session_id(key))
    stored = redis_client.get(name)
    session = SessionStore(key)
    session.load()
    session["big"] = "x" * 2000
    round_trips.count = 0
    with pytest.raises(SessionTooLarge, match="REDISSTORE_MAX_SIZE"):
        session.save()
    assert round_trips.count == 0
    assert redis_client.get(name) == stored
    fresh = SessionStore()
    fresh["big"] = "x" * 2000
    round_trips.count = 0
    with pytest.raises(SessionTooLarge):
        fresh.save()
    assert round_trips.count == 0
    assert list(redis_client.scan_iter(f"{redisstore}:*")) == [name.encode()]


def test_session_at_max_size_is_saved(settings: Any) -> None:
    session = SessionStore()
    session["v"] = ""
    overhead = len(codec.encode_payload({"v": ""}, session.serializer))
    settings.REDISSTORE_MAX_SIZE = overhead + 500
    session["v"] = "x" * 500
    session.save()
    assert SessionStore(session.session_key)["v"] == "x" * 500


@needs_async_api
async def test_async_session_over_max_size_is_refused(
    settings: Any, redisstore: str, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_MAX_SIZE = 100
    session = SessionStore()
    await session.aset("big", "x" * 200)
    with pytest.raises(SessionTooLarge):
        await session.asave()
    assert list(redis_client.scan_iter(f"{redisstore}:*")) == []


def test_clients_follow_the_retries_setting(settings: Any) -> None:
    # A changed REDISSTORE_RETRIES makes a new client rather than reusing one built before.
    first = clients.get_client()
    settings.REDISSTORE_RETRIES = 7
    assert clients.get_client() is not first


@needs_async_api
@pytest.mark.parametrize("read_by", ["view", "middleware"])
async def test_middleware_answers_503_under_asgi_too(
    proxy: TcpProxy, settings: Any, read_by: str
) -> None:
    # Read by the view, or first by a middleware before it (Django made a 500 of that first,
    # and reports it: the test client would re-raise it).
    settings.MIDDLEWARE = MIDDLEWARE_503 if read_by == "view" else READ_BEFORE_VIEW["request.user"]
    key = saved_key(a="1")
    client = AsyncClient(raise_request_exception=read_by == "view")
    client.cookies[django_settings.SESSION_COOKIE_NAME] = key
    proxy.set_mode(REFUSE)
    response = await client.get("/read/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert_cookie_kept(response, key)
    proxy.set_mode(FORWARD)
    response = await client.get("/read/")
    assert json.loads(response.content) == {"a": "1"}
