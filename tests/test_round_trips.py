"""Round trips per request, counted as packets sent to a real Redis server.

The budget: a request that only reads its session costs 1, one that changes it 2 (load, then a
save with any index upkeep in the same pipeline), creating a session 1, and a request that never
touches ``request.session`` 0. Sync requests go through Django's test client and the real
``SessionMiddleware``; the async API is counted on the same request shapes.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

from django_redisstore import clients, scripts
from django_redisstore.session import SessionStore

from .django_versions import needs_async_api
from .redis_servers import RoundTrips


def warm_up() -> None:
    """Connect and load the scripts first: only the engine's own traffic is counted."""
    client = clients.get_client()
    client.ping()
    for script in scripts.ALL:
        client.script_load(script.source)


async def awarm_up() -> None:
    client = clients.get_async_client()
    await client.ping()
    for script in scripts.ALL:
        await client.script_load(script.source)


@pytest.fixture
def browser(settings: Any) -> Client:
    """A test client that holds a saved session ``{"a": "1"}``."""
    store = SessionStore()
    store["a"] = "1"
    store.save()
    client = Client()
    assert store.session_key is not None
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return client


@pytest.fixture
def signed_in(settings: Any) -> Client:
    """A test client whose session belongs to a user (so saves keep the per-user index)."""
    store = SessionStore()
    store[SESSION_KEY] = "42"
    store.save()
    client = Client()
    assert store.session_key is not None
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return client


def count(round_trips: RoundTrips, client: Client, path: str, **query: str) -> int:
    warm_up()
    round_trips.count = 0
    response = client.get(path, query)
    assert response.status_code == 200
    return round_trips.count


def test_read_only_request_costs_one(browser: Client, round_trips: RoundTrips) -> None:
    assert count(round_trips, browser, "/read/") == 1


def test_read_modify_write_request_costs_two(browser: Client, round_trips: RoundTrips) -> None:
    assert count(round_trips, browser, "/write/", b="2") == 2
    assert count(round_trips, browser, "/read/") == 1
    assert browser.get("/read/").json() == {"a": "1", "b": "2"}


def test_signed_in_read_modify_write_with_index_upkeep_costs_two(
    signed_in: Client, round_trips: RoundTrips
) -> None:
    assert count(round_trips, signed_in, "/write/", b="2") == 2


def test_new_session_costs_one(round_trips: RoundTrips, settings: Any) -> None:
    browser = Client()
    assert count(round_trips, browser, "/write/", a="1") == 1
    assert settings.SESSION_COOKIE_NAME in browser.cookies


def test_untouched_request_costs_nothing(browser: Client, round_trips: RoundTrips) -> None:
    assert count(round_trips, browser, "/untouched/") == 0
    assert count(round_trips, Client(), "/untouched/") == 0


def test_read_with_unknown_cookie_costs_one_and_stores_nothing(
    round_trips: RoundTrips, settings: Any
) -> None:
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = "nosuchsession0000000000000000000"
    assert count(round_trips, browser, "/read/") == 1


def test_read_with_malformed_cookie_costs_nothing(round_trips: RoundTrips, settings: Any) -> None:
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = "../not a session key/"
    assert count(round_trips, browser, "/read/") == 0


def test_logout_costs_one(browser: Client, round_trips: RoundTrips) -> None:
    assert count(round_trips, browser, "/logout/") == 1


def test_save_every_request_read_costs_one(
    browser: Client, round_trips: RoundTrips, settings: Any
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True
    assert count(round_trips, browser, "/read/") == 1
    assert count(round_trips, browser, "/write/", b="2") == 2


def test_cycle_key_of_a_loaded_session_costs_one(round_trips: RoundTrips) -> None:
    store = SessionStore()
    store["a"] = 1
    store.save()
    loaded = SessionStore(store.session_key)
    assert loaded["a"] == 1
    warm_up()
    round_trips.count = 0
    loaded.cycle_key()
    assert round_trips.count == 1


# The async API, on the same request shapes ---------------------------------------------------


async def finish(session: SessionStore) -> None:
    """What ``SessionMiddleware`` does at the end of a request, on the async API."""
    if session.modified and not session.is_empty():
        await session.asave()


@pytest.fixture
async def saved_key() -> str:
    store = SessionStore()
    await store.aset("a", "1")
    await store.asave()
    assert store.session_key is not None
    return store.session_key


@needs_async_api
async def test_async_read_costs_one(saved_key: str, round_trips: RoundTrips) -> None:
    await awarm_up()
    round_trips.count = 0
    session = SessionStore(saved_key)
    assert await session.aget("a") == "1"
    await finish(session)
    assert round_trips.count == 1


@needs_async_api
async def test_async_read_modify_write_costs_two(saved_key: str, round_trips: RoundTrips) -> None:
    await awarm_up()
    round_trips.count = 0
    session = SessionStore(saved_key)
    await session.aset("b", str(int(await session.aget("a")) + 1))
    await finish(session)
    assert round_trips.count == 2
    assert await SessionStore(saved_key).aget("b") == "2"


@needs_async_api
async def test_async_create_costs_one(round_trips: RoundTrips) -> None:
    await awarm_up()
    round_trips.count = 0
    session = SessionStore()
    await session.aset("a", "1")
    await finish(session)
    assert round_trips.count == 1
    assert session.session_key is not None


@needs_async_api
async def test_async_untouched_costs_nothing(saved_key: str, round_trips: RoundTrips) -> None:
    await awarm_up()
    round_trips.count = 0
    await finish(SessionStore(saved_key))
    assert round_trips.count == 0


@needs_async_api
async def test_async_cycle_key_costs_one_after_load(
    saved_key: str, round_trips: RoundTrips
) -> None:
    await awarm_up()
    session = SessionStore(saved_key)
    assert await session.aget("a") == "1"
    round_trips.count = 0
    await session.acycle_key()
    assert round_trips.count == 1
