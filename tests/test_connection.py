"""Connections: URL kinds, a django-redis cache's pool, process-wide clients, and outages.

Servers with special options (a password, an ACL user, a Unix socket, one that goes down) are
started here and stopped by their fixtures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from django.core.cache import caches
from django.test import Client, override_settings

from django_redisstore import clients, keys
from django_redisstore.exceptions import ConnectionInterrupted
from django_redisstore.session import SessionStore

from .django_versions import needs_async_api
from .redis_servers import RedisServer

PASSWORD = "s3cret-pw-never-shown"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def unix_server() -> Iterator[RedisServer]:
    with RedisServer(unix_socket=True) as server:
        yield server


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    with RedisServer(password=PASSWORD) as server, server.client() as client:
        client.acl_setuser(
            "sessions-app",
            enabled=True,
            passwords=[f"+{PASSWORD}-alice"],
            keys=["*"],
            commands=["+@all"],
        )
        yield server


@pytest.fixture
def doomed_server() -> Iterator[RedisServer]:
    """A password-protected server that the test takes down (and may bring back)."""
    with RedisServer(password=PASSWORD) as server:
        yield server


def _name(session_key: str | None) -> str:
    assert session_key is not None
    return keys.session_name(keys.session_id(session_key))


def _round_trip() -> SessionStore:
    session = SessionStore()
    session["answer"] = 42
    session.save()
    reader = SessionStore(session.session_key)
    assert reader.load() == {"answer": 42}
    return session


async def _around_trip() -> SessionStore:
    session = SessionStore()
    await session.aset("answer", 42)
    await session.asave()
    reader = SessionStore(session.session_key)
    assert await reader.aload() == {"answer": 42}
    return session


# A django-redis cache's connection ---------------------------------------------------------------


@pytest.fixture
def cache_alias(settings: Any, redis_server_url: str) -> str:
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_CACHE_ALIAS = "sessions"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_server_url},
    }
    return "sessions"


def test_cache_alias_sync_path_uses_the_caches_own_pool(
    cache_alias: str, redis_client: redis.Redis
) -> None:
    cache_client = caches[cache_alias].client.get_client(write=True)  # type: ignore[attr-defined]
    assert clients.get_client().connection_pool is cache_client.connection_pool
    session = _round_trip()
    assert redis_client.exists(_name(session.session_key)) == 1


@needs_async_api
async def test_cache_alias_async_path_reaches_the_same_server(
    cache_alias: str, redis_client: redis.Redis
) -> None:
    session = await _around_trip()
    assert redis_client.exists(_name(session.session_key)) == 1
    sync_kwargs = clients.get_client().connection_pool.connection_kwargs
    async_kwargs = clients.get_async_client().connection_pool.connection_kwargs
    assert (async_kwargs["host"], async_kwargs["port"]) == (
        sync_kwargs["host"],
        sync_kwargs["port"],
    )
    # Written by one path, read by the other.
    assert SessionStore(session.session_key).load() == {"answer": 42}


# URL kinds ---------------------------------------------------------------------------------------


def test_unix_socket_url(settings: Any, unix_server: RedisServer) -> None:
    settings.REDISSTORE_URL = f"unix://{unix_server.socket_path}?db=3"
    assert clients.describe(clients.get_client()) == f"unix:{unix_server.socket_path}"
    session = _round_trip()
    assert unix_server.client(db=3).exists(_name(session.session_key)) == 1


@needs_async_api
async def test_unix_socket_url_async(settings: Any, unix_server: RedisServer) -> None:
    settings.REDISSTORE_URL = f"unix://{unix_server.socket_path}?db=3"
    session = await _around_trip()
    assert unix_server.client(db=3).exists(_name(session.session_key)) == 1


def test_password_in_the_url(settings: Any, acl_server: RedisServer) -> None:
    settings.REDISSTORE_URL = acl_server.url  # redis://:password@host:port/0
    session = _round_trip()
    assert acl_server.client().exists(_name(session.session_key)) == 1


def test_acl_user_and_password_in_the_url(settings: Any, acl_server: RedisServer) -> None:
    settings.REDISSTORE_URL = (
        f"redis://sessions-app:{PASSWORD}-alice@127.0.0.1:{acl_server.port}/0"
    )
    session = _round_trip()
    client = acl_server.client()
    assert client.exists(_name(session.session_key)) == 1
    connected = [c for c in client.client_list() if c.get("user") == "sessions-app"]
    assert connected, "the engine did not connect as the ACL user"


@needs_async_api
async def test_acl_user_and_password_in_the_url_async(
    settings: Any, acl_server: RedisServer
) -> None:
    settings.REDISSTORE_URL = (
        f"redis://sessions-app:{PASSWORD}-alice@127.0.0.1:{acl_server.port}/0"
    )
    session = await _around_trip()
    assert acl_server.client().exists(_name(session.session_key)) == 1


def test_a_wrong_password_is_reported_without_the_password(
    settings: Any, acl_server: RedisServer
) -> None:
    settings.REDISSTORE_URL = (
        f"redis://sessions-app:{PASSWORD}-wrong@127.0.0.1:{acl_server.port}/0"
    )
    with pytest.raises(ConnectionInterrupted) as raised:
        _round_trip()
    message = str(raised.value)
    assert f"127.0.0.1:{acl_server.port}" in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(raised.value.__cause__)


# Redis down at request time ----------------------------------------------------------------------


def _down_server_session(settings: Any, server: RedisServer) -> str:
    settings.REDISSTORE_URL = server.url
    settings.REDISSTORE_CONNECT_TIMEOUT = 0.5
    settings.REDISSTORE_SOCKET_TIMEOUT = 0.5
    session = SessionStore()
    session["user"] = "alice"
    session.save()
    assert session.session_key is not None
    server.client().save()  # a snapshot, so that the restarted server still has the session
    server.kill()
    return session.session_key


def _assert_names_address_only(error: BaseException, server: RedisServer) -> None:
    message = str(error)
    assert f"127.0.0.1:{server.port}" in message
    assert PASSWORD not in message


def test_redis_down_raises_connection_interrupted_and_signs_nobody_out(
    settings: Any, doomed_server: RedisServer
) -> None:
    session_key = _down_server_session(settings, doomed_server)
    reader = SessionStore(session_key)
    with pytest.raises(ConnectionInterrupted) as raised:
        reader.load()
    _assert_names_address_only(raised.value, doomed_server)
    assert reader.session_key == session_key  # not dropped as if the session were unknown

    writer = SessionStore(session_key)
    with pytest.raises(ConnectionInterrupted):
        writer["user"] = writer.get("user", "") + "!"

    # Back up: the session is still there, exactly as it was.
    doomed_server.start()
    assert SessionStore(session_key).load() == {"user": "alice"}


def test_redis_down_through_the_middleware_is_an_error_not_a_new_session(
    settings: Any, doomed_server: RedisServer
) -> None:
    session_key = _down_server_session(settings, doomed_server)
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    with pytest.raises(ConnectionInterrupted) as raised:
        client.get("/write/?x=1")
    _assert_names_address_only(raised.value, doomed_server)
    assert client.cookies[settings.SESSION_COOKIE_NAME].value == session_key

    doomed_server.start()
    assert SessionStore(session_key).load() == {"user": "alice"}


def test_redis_down_behind_a_cache_alias_names_the_address_only(
    settings: Any, doomed_server: RedisServer
) -> None:
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_CACHE_ALIAS = "sessions"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": doomed_server.url},
    }
    session = SessionStore()
    session["user"] = "alice"
    session.save()
    doomed_server.kill()
    with pytest.raises(ConnectionInterrupted) as raised:
        SessionStore(session.session_key).load()
    _assert_names_address_only(raised.value, doomed_server)


@pytest.mark.parametrize("api", ["sync", pytest.param("async", marks=needs_async_api)])
def test_redis_not_answering_times_out_and_signs_nobody_out(
    api: str, settings: Any, doomed_server: RedisServer
) -> None:
    settings.REDISSTORE_URL = doomed_server.url
    settings.REDISSTORE_SOCKET_TIMEOUT = 0.2
    session = SessionStore()
    session["user"] = "alice"
    session.save()
    assert doomed_server.process is not None
    doomed_server.process.send_signal(signal.SIGSTOP)  # connections open, nothing answers
    try:
        reader = SessionStore(session.session_key)
        with pytest.raises(ConnectionInterrupted) as raised:
            if api == "sync":
                reader.load()
            else:
                asyncio.run(_aload_and_close(reader))
    finally:
        doomed_server.process.send_signal(signal.SIGCONT)
    _assert_names_address_only(raised.value, doomed_server)
    assert "timed out" in str(raised.value)
    assert SessionStore(session.session_key).load() == {"user": "alice"}


async def _aload_and_close(session: SessionStore) -> None:
    try:
        await session.aload()
    finally:
        await clients.aclose()


@needs_async_api
async def test_redis_down_async_raises_connection_interrupted(
    settings: Any, doomed_server: RedisServer
) -> None:
    session_key = _down_server_session(settings, doomed_server)
    reader = SessionStore(session_key)
    with pytest.raises(ConnectionInterrupted) as raised:
        await reader.aload()
    _assert_names_address_only(raised.value, doomed_server)
    with pytest.raises(ConnectionInterrupted):
        await SessionStore().acreate()


def test_redis_down_on_save_raises_connection_interrupted(
    settings: Any, doomed_server: RedisServer
) -> None:
    settings.REDISSTORE_URL = doomed_server.url
    session = SessionStore()
    session["a"] = 1
    session.save()
    session["a"] = 2
    doomed_server.kill()
    with pytest.raises(ConnectionInterrupted) as raised:
        session.save()
    _assert_names_address_only(raised.value, doomed_server)


# Process-wide clients, made on first use ---------------------------------------------------------


def test_the_sync_client_is_one_object_for_the_whole_process() -> None:
    first = clients.get_client()
    assert clients.get_client() is first
    seen: list[redis.Redis] = []
    threads = [threading.Thread(target=lambda: seen.append(clients.get_client()))]
    threads += [threading.Thread(target=lambda: seen.append(clients.get_client()))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(client is first for client in seen)


@needs_async_api
async def test_the_async_client_is_one_object_per_event_loop() -> None:
    first = clients.get_async_client()
    assert clients.get_async_client() is first

    async def request() -> redis.asyncio.Redis:
        await asyncio.sleep(0)
        return clients.get_async_client()

    results = await asyncio.gather(request(), request(), request())
    assert all(client is first for client in results)


def test_importing_the_engine_opens_no_socket(redis_server_url: str) -> None:
    # A fresh interpreter reports every socket connect through an audit hook; importing the
    # engine, setting Django up, running the checks and making a SessionStore must open none.
    script = """
import os, sys
connects = []
sys.addaudithook(lambda event, args: event == "socket.connect" and connects.append(args))
import tests.settings
tests.settings.REDISSTORE_URL = os.environ["REDISSTORE_TEST_URL"]
import django
django.setup()
import django_redisstore.session
from django.core.checks import run_checks
run_checks()
store = django_redisstore.session.SessionStore("a" * 32)
print("before-use", len(connects))
store.exists("a" * 32)
print("after-use", len(connects))
"""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT),
        REDISSTORE_TEST_URL=redis_server_url,
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "before-use 0" in result.stdout
    assert "after-use 0" not in result.stdout  # the hook works: the first use does connect


def test_override_settings_switches_server(
    own_server: RedisServer, redis_client: redis.Redis
) -> None:
    with override_settings(REDISSTORE_URL=own_server.url):
        moved = _round_trip()
    stayed = _round_trip()
    other = own_server.client()
    assert other.exists(_name(moved.session_key)) == 1
    assert redis_client.exists(_name(moved.session_key)) == 0
    assert redis_client.exists(_name(stayed.session_key)) == 1
    assert other.exists(_name(stayed.session_key)) == 0
    other.delete(_name(moved.session_key))
    other.close()
