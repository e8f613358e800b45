"""Hostile input: fuzzed session cookies, and foreign or corrupted data under a session's key.

A cookie is whatever a client sends; the data in Redis is whatever anyone with access to Redis
wrote. Neither may crash a request, create anything in Redis, or be taken for a session.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client, override_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_redisstore import codec, keys
from django_redisstore.session import SessionStore

from .django_versions import needs_async_api

#: Examples per property in the suite; the soak run (``pytest -m slow``) tries far more.
EXAMPLES = 300
SOAK_EXAMPLES = 5000

fuzz = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
soak = hypothesis_settings(fuzz, max_examples=SOAK_EXAMPLES)

#: Cookie values: any text (NUL, non-ASCII, control characters), glob and Redis-pattern
#: characters, well-formed keys that name no session, raw bytes, and long runs up to 10 KB.
cookie_values = st.one_of(
    st.text(max_size=100),
    st.text(alphabet="*?[]^\\-!:{}\x00 ;=,\"'", max_size=64),
    st.from_regex(r"[a-z0-9]{8,64}", fullmatch=True),
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(1000, 10_240)),
)
HOSTILE_EXAMPLES = ["", "\x00", "*", "?", "[a-z]*", "\\", "é" * 40, "a" * 10_240, "0" * 64]


def keys_under(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(f"{prefix}:*", count=1000))


def as_wsgi(value: str) -> str:
    """``value`` as a WSGI server hands a header over: its UTF-8 bytes, decoded as latin-1."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


# Fuzzed cookies ---------------------------------------------------------------------------------


def check_cookie(value: str, slide: bool, redis_client: redis.Redis, prefix: str) -> None:
    before = redis_client.dbsize()
    header = f"{django_settings.SESSION_COOKIE_NAME}={as_wsgi(value)}"
    with override_settings(SESSION_SAVE_EVERY_REQUEST=slide):
        response = Client(raise_request_exception=True).get("/read/", HTTP_COOKIE=header)
    assert response.status_code == 200
    assert json.loads(response.content) == {}
    assert keys_under(redis_client, prefix) == []
    assert redis_client.dbsize() == before


@fuzz
@given(value=cookie_values, slide=st.booleans())
def test_any_cookie_reads_as_no_session_and_creates_nothing(
    value: str, slide: bool, redis_client: redis.Redis, redisstore: str
) -> None:
    check_cookie(value, slide, redis_client, redisstore)


for hostile in HOSTILE_EXAMPLES:
    test_any_cookie_reads_as_no_session_and_creates_nothing = example(value=hostile, slide=False)(
        test_any_cookie_reads_as_no_session_and_creates_nothing
    )


@pytest.mark.slow
@soak
@given(value=cookie_values, slide=st.booleans())
def test_soak_any_cookie_reads_as_no_session_and_creates_nothing(
    value: str, slide: bool, redis_client: redis.Redis, redisstore: str
) -> None:
    check_cookie(value, slide, redis_client, redisstore)


@fuzz
@given(value=cookie_values)
def test_any_session_key_is_harmless_to_every_storage_method(
    value: str, redis_client: redis.Redis, redisstore: str
) -> None:
    before = redis_client.dbsize()
    session = SessionStore(value)
    assert session.load() == {}
    assert session.session_key is None
    assert session.exists(value) is False
    session.delete(value)
    assert keys_under(redis_client, redisstore) == []
    assert redis_client.dbsize() == before


@needs_async_api
async def test_async_hostile_session_keys_are_harmless(
    redis_client: redis.Redis, redisstore: str
) -> None:
    for value in [*HOSTILE_EXAMPLES, "abcdefgh", "z" * 32]:
        session = SessionStore(value)
        assert await session.aload() == {}
        assert await session.aexists(value) is False
        await session.adelete(value)
    assert keys_under(redis_client, redisstore) == []


# Foreign or corrupted data under a session's key ----------------------------------------------


def stored(**data: Any) -> tuple[str, str]:
    session = SessionStore()
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session.session_key, keys.session_name(keys.session_id(session.session_key))


def assert_suspicious_and_empty(key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, "django.security.SuspiciousSession"):
        session = SessionStore(key)
        assert session.load() == {}
    assert session.session_key is None  # a save creates a new session, under a new key
    assert [r.name for r in caplog.records] == ["django.security.SuspiciousSession"]


@fuzz
@given(garbage=st.binary(max_size=2000))
def test_garbage_under_a_session_key_reads_as_empty_and_is_logged(
    garbage: bytes, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key, name = stored(a=1)
    redis_client.set(name, garbage)
    assert_suspicious_and_empty(key, caplog)


@fuzz
@given(data=st.data())
def test_a_damaged_record_reads_as_empty_and_is_logged(
    data: st.DataObject, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key, name = stored(a=1, text="x" * data.draw(st.integers(0, 600)))
    blob = redis_client.get(name)
    assert blob is not None
    damage = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if damage == "flip":
        # Bytes 2-17 (times, TTL fields) are deliberately unsigned: damage the signed ones.
        signed = [0, 1, *range(codec.MAC_OFFSET, len(blob))]
        at = data.draw(st.sampled_from(signed))
        bit = data.draw(st.integers(0, 7))
        blob = blob[:at] + bytes([blob[at] ^ (1 << bit)]) + blob[at + 1 :]
    elif damage == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        blob += data.draw(st.binary(min_size=1, max_size=50))
    redis_client.set(name, blob)
    assert_suspicious_and_empty(key, caplog)


def test_a_record_copied_from_another_session_reads_as_empty(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key, name = stored(user="victim")
    _, other = stored(user="attacker")
    redis_client.set(name, redis_client.get(other) or b"")
    assert_suspicious_and_empty(key, caplog)


def test_a_record_signed_with_another_secret_reads_as_empty(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    key, name = stored(a=1)
    payload = json.dumps({"a": 2}).encode()
    blob, _ = codec.pack(
        name, payload, secret="not-the-secret", created=1, saved=1, idle=60, until=0,
        compress_min_size=None,
    )  # fmt: skip
    redis_client.set(name, blob)
    assert_suspicious_and_empty(key, caplog)


@pytest.mark.parametrize("kind", ["hash", "list", "set", "zset", "stream"])
@pytest.mark.parametrize("slide", [False, True])
def test_a_foreign_type_under_a_session_key_reads_as_empty_and_is_logged(
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    settings: Any,
    kind: str,
    slide: bool,
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = slide
    key, name = stored(a=1)
    redis_client.delete(name)
    {
        "hash": lambda: redis_client.hset(name, "a", "1"),
        "list": lambda: redis_client.rpush(name, "a"),
        "set": lambda: redis_client.sadd(name, "a"),
        "zset": lambda: redis_client.zadd(name, {"a": 1}),
        "stream": lambda: redis_client.xadd(name, {"a": "1"}),
    }[kind]()
    assert_suspicious_and_empty(key, caplog)


def test_a_request_over_foreign_data_gets_a_fresh_session(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key, name = stored(a="1")
    redis_client.delete(name)
    redis_client.hset(name, "a", "1")
    client = Client(raise_request_exception=True)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = key
    with caplog.at_level(logging.WARNING, "django.security.SuspiciousSession"):
        response = client.get("/write/", {"b": "2"})
    assert response.status_code == 200
    assert json.loads(response.content) == {"b": "2"}
    new_key = response.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert new_key != key
    assert SessionStore(new_key).load() == {"b": "2"}
    assert "django.security.SuspiciousSession" in [r.name for r in caplog.records]


@needs_async_api
async def test_async_foreign_data_reads_as_empty_and_is_logged(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    key, name = stored(a=1)
    for poison in (
        lambda: redis_client.set(name, b"\x01garbage"),
        lambda: redis_client.sadd(name, "a"),
    ):
        redis_client.delete(name)
        poison()
        caplog.clear()
        with caplog.at_level(logging.WARNING, "django.security.SuspiciousSession"):
            assert await SessionStore(key).aload() == {}
        assert [r.name for r in caplog.records] == ["django.security.SuspiciousSession"]
