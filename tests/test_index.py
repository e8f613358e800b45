"""The per-user index API: ``user_sessions``, ``end_user_sessions``, their async twins, and the
pruning that ``clearsessions`` runs."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.management import call_command

import django_redisstore
from django_redisstore import keys
from django_redisstore.session import SessionStore

from .command_helpers import make_session
from .contract import index_members
from .threads import run_threads


def sid_of(session: SessionStore) -> str:
    assert session.session_key is not None
    return keys.session_id(session.session_key)


def test_user_sessions_lists_the_users_live_sessions_with_their_details() -> None:
    first, second = make_session(7), make_session(7, big=secrets.token_hex(500))  # incompressible
    make_session(8)
    SessionStore().save()  # anonymous

    found = django_redisstore.user_sessions(7)

    assert {info.id for info in found} == {sid_of(first), sid_of(second)}
    now = datetime.now(timezone.utc)
    for info in found:
        assert info.user_id == "7"
        assert info.created <= now and info.saved <= now
        assert info.expires_at.tzinfo is not None
        assert timedelta(days=13) < info.expires_at - now <= timedelta(weeks=2)
        assert 1209590 <= info.ttl <= 1209600
        assert info.size > keys_header_size()
    sizes = {info.id: info.size for info in found}
    assert sizes[sid_of(second)] > sizes[sid_of(first)]


def keys_header_size() -> int:
    from django_redisstore import codec

    return codec.HEADER_SIZE


@pytest.mark.django_db
def test_user_sessions_accepts_a_user_instance() -> None:
    user = get_user_model().objects.create_user("ada", password="pw")
    session = make_session(user.pk)

    assert [info.id for info in django_redisstore.user_sessions(user)] == [sid_of(session)]


def test_user_with_no_sessions_has_an_empty_list() -> None:
    assert django_redisstore.user_sessions(12345) == []


def test_entries_of_sessions_deleted_behind_the_engines_back_are_pruned(
    redis_client: redis.Redis,
) -> None:
    live, gone = make_session(7), make_session(7)
    assert gone.session_key is not None
    redis_client.delete(keys.session_name(sid_of(gone)))

    assert [info.id for info in django_redisstore.user_sessions(7)] == [sid_of(live)]
    assert index_members(redis_client, "7") == {sid_of(live)}


def test_entry_of_a_session_now_belonging_to_another_user_is_dropped(
    redis_client: redis.Redis,
) -> None:
    session = make_session(7)
    # Filed under 9 by a writer that lost a race: the session itself says it is 7's.
    redis_client.zadd(keys.user_index_name("9"), {sid_of(session): 2**31})

    assert django_redisstore.user_sessions(9) == []
    assert index_members(redis_client, "9") == set()
    assert [info.id for info in django_redisstore.user_sessions(7)] == [sid_of(session)]


def test_end_user_sessions_keeps_the_given_session_and_counts_the_others(
    redis_client: redis.Redis,
) -> None:
    here, there, elsewhere = make_session(7), make_session(7), make_session(7)
    other_user = make_session(8)

    ended = django_redisstore.end_user_sessions(7, keep=here.session_key)

    assert ended == 2
    assert SessionStore(here.session_key).load() != {}
    assert SessionStore(there.session_key).load() == {}
    assert SessionStore(elsewhere.session_key).load() == {}
    assert SessionStore(other_user.session_key).load() != {}
    assert index_members(redis_client, "7") == {sid_of(here)}


def test_end_user_sessions_without_keep_ends_all_and_empties_the_index(
    redis_client: redis.Redis,
) -> None:
    sessions = [make_session(7) for _ in range(3)]

    assert django_redisstore.end_user_sessions(7) == 3
    assert all(SessionStore(s.session_key).load() == {} for s in sessions)
    assert not redis_client.exists(keys.user_index_name("7"))


def test_end_user_sessions_never_ends_a_session_of_someone_else_listed_by_mistake(
    redis_client: redis.Redis,
) -> None:
    victim = make_session(8)
    redis_client.zadd(keys.user_index_name("7"), {sid_of(victim): 2**31})

    assert django_redisstore.end_user_sessions(7) == 0
    assert SessionStore(victim.session_key).load()["_auth_user_id"] == "8"


async def test_async_twins_see_and_end_the_same_sessions() -> None:
    here, there = make_session(7), make_session(7)

    found = await django_redisstore.auser_sessions(7)
    assert {info.id for info in found} == {sid_of(here), sid_of(there)}
    assert await django_redisstore.aend_user_sessions(7, keep=here.session_key) == 1
    assert [info.id for info in await django_redisstore.auser_sessions(7)] == [sid_of(here)]


def test_logout_flush_and_cycle_key_are_reflected(redis_client: redis.Redis) -> None:
    kept, flushed, cycled = make_session(7), make_session(7), make_session(7)
    flushed.flush()
    old = sid_of(cycled)
    cycled.cycle_key()

    # In Redis itself first: user_sessions() below prunes, so it would hide a stale entry.
    assert index_members(redis_client, "7") == {sid_of(kept), sid_of(cycled)}
    ids = {info.id for info in django_redisstore.user_sessions(7)}
    assert ids == {sid_of(kept), sid_of(cycled)}
    assert old not in ids


def test_removing_the_user_id_from_the_data_removes_the_index_entry(
    redis_client: redis.Redis,
) -> None:
    session, other = make_session(7), make_session(7)
    session.load()
    del session[SESSION_KEY]  # what a hand-made sign-out does, without flush()
    session.save()

    # Straight from Redis, before anything prunes (user_sessions() would).
    assert redis_client.zscore(keys.user_index_name("7"), sid_of(session)) is None
    assert index_members(redis_client, "7") == {sid_of(other)}


async def test_removing_the_user_id_then_asave_removes_the_index_entry(
    redis_client: redis.Redis,
) -> None:
    session = make_session(7)
    await session.aload()
    del session[SESSION_KEY]
    await session.asave()

    assert redis_client.zscore(keys.user_index_name("7"), sid_of(session)) is None
    assert not redis_client.exists(keys.user_index_name("7"))


def test_a_longer_expiry_pushes_the_index_entry_past_the_new_expiry(
    redis_client: redis.Redis,
) -> None:
    session = SessionStore()
    session[SESSION_KEY] = "7"
    session.set_expiry(600)  # from the start: its entry is filed for about 20 minutes
    session.save()
    short = redis_client.zscore(keys.user_index_name("7"), sid_of(session))
    session.set_expiry(7 * 86400)
    session.save()

    score = redis_client.zscore(keys.user_index_name("7"), sid_of(session))
    assert short is not None and score is not None
    assert score >= time.time() + 7 * 86400 > short


def test_a_session_signed_in_as_another_user_moves_to_that_users_index(
    redis_client: redis.Redis,
) -> None:
    session = make_session(7)
    session[SESSION_KEY] = "8"  # the same session, now another user's (no cycle_key)
    session.save()

    assert index_members(redis_client, "7") == set()
    assert index_members(redis_client, "8") == {sid_of(session)}


def test_saving_a_signed_in_session_with_a_past_expiry_removes_its_index_entry(
    redis_client: redis.Redis,
) -> None:
    session, other = make_session(7), make_session(7)
    session.set_expiry(-1)
    session.save()  # a session in the past is a session gone

    assert not redis_client.exists(keys.session_name(sid_of(session)))
    assert index_members(redis_client, "7") == {sid_of(other)}


def test_index_stays_exact_under_concurrent_logins_and_logouts(
    redis_client: redis.Redis,
) -> None:
    survivors: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(15):
            session = make_session(7, n=n, i=i)
            if i % 3:  # two in three sign out again, some by flush, some by delete
                if i % 2:
                    session.flush()
                else:
                    session.delete()
            else:
                with lock:
                    survivors.append(sid_of(session))

    run_threads(8, worker)

    # Redis first (user_sessions() prunes), then what the API lists.
    assert index_members(redis_client, "7") == set(survivors)
    assert {info.id for info in django_redisstore.user_sessions(7)} == set(survivors)
    assert len(survivors) == 8 * 5


def test_clear_expired_prunes_stale_entries_of_every_user_and_says_so(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    live = make_session(1)
    for user in ("1", "2", "3"):
        redis_client.zadd(keys.user_index_name(user), {f"gone{user}": 2**31, f"old{user}": 1})

    with caplog.at_level(logging.INFO, logger="django_redisstore"):
        call_command("clearsessions")

    assert index_members(redis_client, "1") == {sid_of(live)}
    assert not redis_client.exists(keys.user_index_name("2"))
    assert "Pruned 6 stale entries from 3 user indexes" in caplog.text


async def test_aclear_expired_prunes_too(redis_client: redis.Redis) -> None:
    redis_client.zadd(keys.user_index_name("5"), {"gone": 2**31})

    await SessionStore.aclear_expired()

    assert not redis_client.exists(keys.user_index_name("5"))


def test_importing_the_package_loads_neither_the_engine_nor_settings() -> None:
    code = (
        "import sys, django_redisstore\n"
        "assert 'django_redisstore.index' not in sys.modules\n"
        "assert 'django_redisstore.session' not in sys.modules\n"
        "assert 'django_redisstore.conf' not in sys.modules\n"
        "assert callable(django_redisstore.user_sessions.__call__)\n"
        "assert 'django_redisstore.index' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_session_someone_made_persistent_stays_listed(redis_client: redis.Redis) -> None:
    session = make_session(7)
    redis_client.persist(keys.session_name(sid_of(session)))

    (info,) = django_redisstore.user_sessions(7)

    assert info.ttl == -1
    assert info.expires_at.year == 9999
    assert index_members(redis_client, "7") == {sid_of(session)}


def test_listing_costs_two_round_trips_and_ending_one_more(round_trips: Any) -> None:
    for _ in range(5):
        make_session(7)
    django_redisstore.user_sessions(7)  # connects and loads nothing else: a warm client

    round_trips.count = 0
    assert len(django_redisstore.user_sessions(7)) == 5
    assert round_trips.count == 2

    round_trips.count = 0
    assert django_redisstore.end_user_sessions(7) == 5
    assert round_trips.count == 3


def test_end_user_sessions_with_ids_ends_only_those_of_the_user(redis_client: redis.Redis) -> None:
    first, second, other = make_session(7), make_session(7), make_session(8)

    ended = django_redisstore.end_user_sessions(7, ids={sid_of(first), sid_of(other)})

    assert ended == 1  # the other user's id is ignored, not ended
    assert [info.id for info in django_redisstore.user_sessions(7)] == [sid_of(second)]
    assert redis_client.exists(keys.session_name(sid_of(other))) == 1
    assert index_members(redis_client, "7") == {sid_of(second)}


async def test_aend_user_sessions_with_ids() -> None:
    first, second = make_session(7), make_session(7)

    assert await django_redisstore.aend_user_sessions(7, ids={sid_of(second)}) == 1

    assert [info.id for info in await django_redisstore.auser_sessions(7)] == [sid_of(first)]


def test_records_carry_the_device_record_of_the_session() -> None:
    with_device = make_session(
        7,
        _redisstore_device={
            "ua": "Mozilla/5.0 (X11; Linux) Firefox/130.0",
            "ip": "203.0.113.9",
            "seen": 1_700_000_000,
        },
    )
    without = make_session(7)

    devices = {info.id: info.device for info in django_redisstore.user_sessions(7)}

    assert devices[sid_of(without)] is None
    device = devices[sid_of(with_device)]
    assert device is not None
    assert (device.ip, device.label) == ("203.0.113.9", "Firefox on Linux")
    assert device.last_seen == datetime.fromtimestamp(1_700_000_000, timezone.utc)
