"""``check --deploy``: warnings when Redis can evict sessions or keeps nothing on disk."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.management import call_command

from django_redisstore.checks import check_durability, check_failure_policy

from .redis_servers import RedisServer, free_port


@pytest.fixture
def admin(own_server: RedisServer, settings: Any) -> Iterator[redis.Redis]:
    """The test's Redis, configured durable and non-evicting; each test changes what it needs."""
    settings.REDISSTORE_URL = own_server.url
    client = own_server.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("appendonly", "yes")
    client.config_set("save", "")
    try:
        yield client
    finally:
        client.close()


def ids() -> list[str]:
    return [message.id or "" for message in check_durability()]


def test_a_durable_non_evicting_redis_passes(admin: redis.Redis) -> None:
    assert ids() == []


@pytest.mark.parametrize(
    "policy",
    ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"],
)
def test_an_evicting_policy_warns_with_the_fix(admin: redis.Redis, policy: str) -> None:
    admin.config_set("maxmemory-policy", policy)
    (message,) = check_durability()
    assert message.id == "django_redisstore.W010"
    assert policy in message.msg
    assert "noeviction" in (message.hint or "")


def test_no_persistence_at_all_warns_with_the_fix(admin: redis.Redis) -> None:
    admin.config_set("appendonly", "no")
    (message,) = check_durability()
    assert message.id == "django_redisstore.W011"
    assert "appendonly yes" in (message.hint or "")


@pytest.mark.parametrize(("save", "appendonly"), [("3600 1", "no"), ("", "yes"), ("60 1", "yes")])
def test_rdb_snapshots_or_the_append_only_file_count_as_persistence(
    admin: redis.Redis, save: str, appendonly: str
) -> None:
    admin.config_set("save", save)
    admin.config_set("appendonly", appendonly)
    assert ids() == []


def test_both_problems_are_reported_together(admin: redis.Redis) -> None:
    admin.config_set("maxmemory-policy", "volatile-lru")
    admin.config_set("appendonly", "no")
    assert ids() == ["django_redisstore.W010", "django_redisstore.W011"]


@pytest.mark.parametrize(
    ("policy", "appendonly", "expected"),
    [
        ("allkeys-lru", "no", ["django_redisstore.W010", "django_redisstore.I010"]),
        ("noeviction", "no", ["django_redisstore.I010"]),
        ("noeviction", "yes", []),
    ],
)
def test_a_redis_that_forbids_config_gets_what_info_tells_and_a_note(
    settings: Any, policy: str, appendonly: str, expected: list[str]
) -> None:
    managed = RedisServer(
        "--rename-command", "CONFIG", "",
        "--maxmemory-policy", policy,
        "--appendonly", appendonly,
    ).start()  # fmt: skip
    try:
        settings.REDISSTORE_URL = managed.url
        with pytest.raises(redis.ResponseError):
            managed.client().config_get("save")
        assert ids() == expected
    finally:
        managed.stop()


def test_an_acl_user_without_config_gets_the_same_fallback(
    admin: redis.Redis, own_server: RedisServer, settings: Any
) -> None:
    admin.config_set("maxmemory-policy", "volatile-ttl")
    admin.config_set("appendonly", "no")
    admin.acl_setuser(
        "sessions", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"]
    )
    try:
        settings.REDISSTORE_URL = f"redis://sessions:pw@127.0.0.1:{own_server.port}/0"
        assert ids() == ["django_redisstore.W010", "django_redisstore.I010"]
        admin.acl_setuser("sessions", commands=["-info"])
        assert ids() == ["django_redisstore.I011"]  # not even INFO: a note, not a crash
    finally:
        admin.acl_deluser("sessions")


def test_an_unreachable_redis_is_an_info_not_a_crash(settings: Any) -> None:
    settings.REDISSTORE_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDISSTORE_CONNECT_TIMEOUT = 0.2
    assert ids() == ["django_redisstore.I011"]


def test_the_check_runs_with_deploy_only(admin: redis.Redis) -> None:
    admin.config_set("maxmemory-policy", "allkeys-lru")
    output = io.StringIO()
    call_command("check", stdout=output, stderr=output)
    assert "django_redisstore.W010" not in output.getvalue()
    call_command("check", "--deploy", stdout=output, stderr=output)
    assert "django_redisstore.W010" in output.getvalue()


def test_nothing_is_checked_when_the_engine_is_not_in_use(
    admin: redis.Redis, settings: Any
) -> None:
    admin.config_set("maxmemory-policy", "allkeys-lru")
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert ids() == []


# The reliability settings themselves (not deploy-only) ----------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ON_REDIS_ERROR", "raise", []),
        ("ON_REDIS_ERROR", "anonymous", []),
        ("ON_REDIS_ERROR", "anon", ["django_redisstore.E010"]),
        ("RETRIES", 0, []),
        ("RETRIES", -1, ["django_redisstore.E011"]),
        ("RETRIES", "2", ["django_redisstore.E011"]),
        ("RETRY_AFTER", 1.5, ["django_redisstore.E011"]),
        ("MAX_SIZE", None, []),
        ("MAX_SIZE", 0, ["django_redisstore.E011"]),
        ("MAX_SIZE", 4096, []),
        ("SAVE_DEADLINE", 0.5, []),
        ("SAVE_DEADLINE", 0, ["django_redisstore.E012"]),
        ("SAVE_DEADLINE", "5", ["django_redisstore.E012"]),
        ("SAVE_BUDGET", 1 << 20, []),
        ("SAVE_BUDGET", 1.5e6, ["django_redisstore.E012"]),
        ("SAVE_BUDGET", -1, ["django_redisstore.E012"]),
    ],
)
def test_reliability_settings_are_checked(
    settings: Any, name: str, value: Any, expected: list[str]
) -> None:
    setattr(settings, "REDISSTORE_" + name, value)
    assert [message.id for message in check_failure_policy()] == expected
