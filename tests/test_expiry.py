"""Expiry: the Redis TTL of a session is Django's ``get_expiry_age()``, and never missing.

The TTL is read back from the test server after each write; the "never without a TTL" property
is checked on the server's own ``MONITOR`` stream, command by command, including the commands
that the engine's Lua scripts run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.utils import timezone

from django_redisstore import clients, keys, scripts
from django_redisstore.session import SessionStore

# Commands that would write a key without a TTL or strip one; the engine never sends them.
FORBIDDEN = {
    "PERSIST", "SETNX", "SETEX", "PSETEX", "GETSET", "MSET", "MSETNX", "APPEND", "RENAME",
    "RENAMENX", "COPY", "RESTORE", "HSET", "SADD", "LPUSH", "RPUSH", "GETEX",
}  # fmt: skip


def name_of(session_key: str | None) -> str:
    assert session_key is not None
    return keys.session_name(keys.session_id(session_key))


def ttl_seconds(client: redis.Redis, name: str) -> float:
    pttl = client.pttl(name)
    assert pttl > 0, f"{name} has no TTL (PTTL {pttl})"
    return float(pttl) / 1000


def assert_ttl_is_expiry_age(client: redis.Redis, session: SessionStore) -> None:
    ttl = ttl_seconds(client, name_of(session.session_key))
    # Both sides are whole seconds computed a few milliseconds apart.
    assert session.get_expiry_age() - 1.5 <= ttl <= session.get_expiry_age() + 0.01


def every_key_has_a_ttl(client: redis.Redis, prefix: str) -> None:
    for name in client.scan_iter(f"{prefix}:*"):
        assert client.pttl(name) > 0, f"{name!r} has no TTL"


EXPIRIES: dict[str, Callable[[], Any]] = {
    "default": lambda: None,
    "seconds": lambda: 1234,
    "timedelta": lambda: timedelta(minutes=7),
    "datetime": lambda: timezone.now() + timedelta(hours=3),
    "browser-close": lambda: 0,
}


@pytest.fixture(params=[True, False], ids=["tz", "naive"])
def use_tz(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.USE_TZ = request.param
    return bool(request.param)


@pytest.mark.parametrize("expiry", EXPIRIES.values(), ids=EXPIRIES.keys())
def test_ttl_equals_expiry_age_after_create_save_and_cycle(
    expiry: Callable[[], Any], use_tz: bool, redis_client: redis.Redis, settings: Any
) -> None:
    session = SessionStore()
    session.set_expiry(expiry())
    session["a"] = 1
    session.create()
    assert_ttl_is_expiry_age(redis_client, session)
    if expiry() == 0:
        assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE

    session["b"] = 2
    session.save()
    assert_ttl_is_expiry_age(redis_client, session)

    reloaded = SessionStore(session.session_key)
    reloaded["c"] = 3
    reloaded.save()
    assert_ttl_is_expiry_age(redis_client, reloaded)

    reloaded.cycle_key()
    assert_ttl_is_expiry_age(redis_client, reloaded)
    reloaded.delete()


def test_changing_the_expiry_changes_the_ttl(redis_client: redis.Redis) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    session.set_expiry(60)
    session.save()
    assert 58.5 <= ttl_seconds(redis_client, name_of(session.session_key)) <= 60
    session.set_expiry(None)
    session.save()
    assert_ttl_is_expiry_age(redis_client, session)
    session.delete()


# MONITOR: no write ever leaves a key without a TTL ---------------------------------------------


@dataclass
class Command:
    source: str  # "lua" for commands run by a script, else the client's address
    args: list[str]

    @property
    def name(self) -> str:
        return self.args[0].upper()


_LINE = re.compile(r"^\S+ \[\d+ (?P<source>[^\]]*)\] (?P<rest>.*)$", re.DOTALL)
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


class CommandLog:
    """What the server executes while the ``with`` block runs, from its ``MONITOR`` stream."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.marker = f"end-of-log-{uuid.uuid4().hex}"
        self.commands: list[Command] = []

    def __enter__(self) -> CommandLog:
        pool = self.client.connection_pool
        # redis-py before 6 requires a command name here; 6 and later deprecate passing one.
        if redis.VERSION >= (6,):
            self.connection = pool.get_connection()
        else:
            self.connection = pool.get_connection("MONITOR")
        self.connection.send_command("MONITOR")
        assert self.connection.read_response() in (b"OK", "OK")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.echo(self.marker)  # on another connection: the end of what we watch
            while True:
                line = self.connection.read_response()
                text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
                match = _LINE.match(text)
                assert match, text
                command = Command(match["source"], _ARG.findall(match["rest"]))
                if command.name == "ECHO" and command.args[1:] == [self.marker]:
                    break
                self.commands.append(command)
        finally:
            self.connection.disconnect()
            self.client.close()

    def scripts(self) -> Iterator[list[Command]]:
        """The commands of each script run, in order."""
        run: list[Command] | None = None
        for command in self.commands:
            if command.source == "lua":
                assert run is not None, "a script command outside any EVAL"
                run.append(command)
                continue
            if run is not None:
                yield run
            run = [] if command.name in ("EVAL", "EVALSHA") else None
        if run is not None:
            yield run


def assert_every_write_carries_a_ttl(log: CommandLog, prefix: str) -> None:
    ours = [c for c in log.commands if len(c.args) > 1 and c.args[1].startswith(prefix)]
    assert ours, "the log saw none of the engine's commands"
    sets = 0
    for command in ours:
        assert command.name not in FORBIDDEN, command
        if command.name == "SET":
            sets += 1
            options = [a.upper() for a in command.args[3:]]
            assert "PX" in options, f"SET without PX: {command.args[:2]}"
            assert int(command.args[3 + options.index("PX") + 1]) > 0
        if command.name in ("SETRANGE", "ZADD", "ZREMRANGEBYSCORE"):
            assert command.source == "lua", f"{command.name} outside a script"
    assert sets, "no SET seen"
    for run in log.scripts():
        # Inside one (atomic) script: a sorted set that is added to gets its TTL in that script.
        for i, command in enumerate(run):
            if command.name == "ZADD":
                key = command.args[1]
                assert any(
                    c.name in ("PEXPIRE", "DEL") and c.args[1] == key for c in run[i + 1 :]
                ), f"ZADD on {key} without PEXPIRE in the same script"
            if command.name == "SETRANGE":
                # Only on a key that exists (and so has its TTL): checked first in the script
                # (by EXISTS, or by comparing its MAC: an absent key has none).
                assert any(c.name in ("EXISTS", "GETRANGE") for c in run[:i])


def test_no_write_leaves_a_key_without_ttl(
    redis_server_url: str, redis_client: redis.Redis, redisstore: str
) -> None:
    with CommandLog(redis_server_url) as log:
        session = SessionStore()
        session["a"] = 1
        session[SESSION_KEY] = "7"  # signed in: the per-user index is written too
        session.create()
        every_key_has_a_ttl(redis_client, redisstore)

        session["b"] = 2
        session.save()
        every_key_has_a_ttl(redis_client, redisstore)

        # A conflicting save: two requests read the same version and both change it.
        first, second = SessionStore(session.session_key), SessionStore(session.session_key)
        first["x"], second["y"] = 1, 2
        first.save()
        second.save()
        every_key_has_a_ttl(redis_client, redisstore)
        assert {"x", "y"} <= set(SessionStore(session.session_key).keys())

        second.set_expiry(timedelta(hours=1))
        second.save()
        second.cycle_key()
        every_key_has_a_ttl(redis_client, redisstore)

        second.flush()
        every_key_has_a_ttl(redis_client, redisstore)
    assert_every_write_carries_a_ttl(log, redisstore)
    names = {c.name for c in log.commands}
    assert {"SET", "EVALSHA", "DEL"} <= names or {"SET", "EVAL", "DEL"} <= names


def test_sliding_load_slides_with_pexpire_only(
    redis_server_url: str, redis_client: redis.Redis, redisstore: str, settings: Any
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True
    session = SessionStore()
    session["a"] = 1
    session.save()
    with CommandLog(redis_server_url) as log:
        SessionStore(session.session_key).load()
    every_key_has_a_ttl(redis_client, redisstore)
    lua = [c.name for c in log.commands if c.source == "lua"]
    assert lua == ["GET", "PEXPIRE"]
    assert not any(c.name in FORBIDDEN or c.name == "SET" for c in log.commands)


# SESSION_SAVE_EVERY_REQUEST: refresh the TTL, not the data ------------------------------------


def warm_up() -> None:
    """Connect and load the scripts, so that counting sees only the engine's own traffic."""
    client = clients.get_client()
    client.ping()
    for script in scripts.ALL:
        client.script_load(script.source)


def test_save_every_request_refreshes_ttl_without_rewriting(
    settings: Any, redis_client: redis.Redis, round_trips: Any
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True
    browser = Client()
    assert browser.get("/write/", {"a": "1"}).status_code == 200
    session_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    name = name_of(session_key)
    before = redis_client.get(name)
    assert before is not None
    redis_client.pexpire(name, 5_000)  # as if the session had aged

    warm_up()
    round_trips.count = 0
    response = browser.get("/read/")
    assert response.json() == {"a": "1"}
    assert round_trips.count == 1

    assert redis_client.get(name) == before  # payload, header and MAC: byte for byte
    assert ttl_seconds(redis_client, name) > settings.SESSION_COOKIE_AGE - 2
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == session_key


def test_save_every_request_with_fixed_expiry_date_does_not_extend_it(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True
    session = SessionStore()
    session.set_expiry(timezone.now() + timedelta(seconds=300))
    session["a"] = 1
    session.save()
    name = name_of(session.session_key)
    before = ttl_seconds(redis_client, name)
    reloaded = SessionStore(session.session_key)
    assert reloaded["a"] == 1
    reloaded.save()
    assert ttl_seconds(redis_client, name) <= before
