"""The engine's contract, as a test class that each topology's module subclasses.

``tests/test_cluster.py``, ``test_sentinel.py`` and ``test_tls.py`` point the settings at their
topology with an autouse fixture and inherit these tests, so one contract is checked on one
server, through Sentinel, on a Redis Cluster and over TLS alike. ``redis`` is a raw client of the
topology (a ``RedisCluster`` on a cluster) for looking at what the engine wrote.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError

from django_redisstore import keys, operations
from django_redisstore.index import auser_sessions, end_user_sessions, user_sessions
from django_redisstore.session import SessionStore

from .django_versions import needs_async_api
from .threads import run_threads


def stored_name(session: SessionStore) -> str:
    assert session.session_key is not None
    return keys.session_name(keys.session_id(session.session_key))


def index_members(redis: Any, user: str) -> set[str]:
    return {member.decode() for member in redis.zrange(keys.user_index_name(user), 0, -1)}


class Contract:
    """Django's session contract and the engine's own promises, sync and async."""

    redis: Any  # set by the subclass's fixture

    def test_create_save_and_load(self) -> None:
        session = SessionStore()
        session["cart"] = [1, 2, 3]
        session.save()
        assert self.redis.exists(stored_name(session)) == 1
        assert 0 < self.redis.pttl(stored_name(session)) <= 1209600 * 1000
        assert SessionStore(session.session_key)["cart"] == [1, 2, 3]

    def test_an_unknown_key_loads_empty_and_creates_nothing(self) -> None:
        session = SessionStore("abcdefghijklmnopqrstuvwxyz012345")
        assert session.load() == {}
        assert session.session_key is None
        assert not SessionStore().exists("abcdefghijklmnopqrstuvwxyz012345")

    def test_exists_and_delete(self) -> None:
        session = SessionStore()
        session["a"] = 1
        session.create()
        key = session.session_key
        assert session.exists(key)
        session.delete()
        assert not SessionStore().exists(key)
        assert self.redis.exists(stored_name(SessionStore(key))) == 0

    def test_cycle_key_keeps_the_data_and_retires_the_old_key(self) -> None:
        session = SessionStore()
        session["a"] = 1
        session.save()
        old = session.session_key
        session.cycle_key()
        assert session.session_key != old
        assert not session.exists(old)
        assert SessionStore(session.session_key)["a"] == 1

    def test_flush_removes_the_session(self) -> None:
        session = SessionStore()
        session["a"] = 1
        session.save()
        key = session.session_key
        session.flush()
        assert not SessionStore().exists(key)

    def test_a_save_after_a_delete_elsewhere_brings_nothing_back(self) -> None:
        session = SessionStore()
        session["a"] = 1
        session.save()
        reader = SessionStore(session.session_key)
        reader["b"] = 2
        session.delete()
        with pytest.raises(UpdateError):
            reader.save()
        assert not SessionStore().exists(session.session_key)

    def test_the_user_index_follows_login_cycle_and_logout(self) -> None:
        session = SessionStore()
        session[SESSION_KEY] = "42"
        session.save()
        first = keys.session_id(session.session_key or "")
        assert index_members(self.redis, "42") == {first}
        session.cycle_key()  # what login() does
        second = keys.session_id(session.session_key or "")
        assert index_members(self.redis, "42") == {second}
        other = SessionStore()
        other[SESSION_KEY] = "42"
        other.save()
        assert len(index_members(self.redis, "42")) == 2
        session.flush()  # what logout() does
        assert index_members(self.redis, "42") == {keys.session_id(other.session_key or "")}

    def test_user_sessions_and_ending_them(self) -> None:
        sessions = []
        for _ in range(4):
            session = SessionStore()
            session[SESSION_KEY] = "11"
            session.save()
            sessions.append(session)
        ids = {keys.session_id(s.session_key or "") for s in sessions}
        assert {info.id for info in user_sessions("11")} == ids
        assert end_user_sessions("11", keep=sessions[0].session_key) == 3
        assert [info.id for info in user_sessions("11")] == [
            keys.session_id(sessions[0].session_key or "")
        ]
        assert not any(SessionStore().exists(s.session_key) for s in sessions[1:])

    def test_inspect_and_purge_walk_every_primary(self) -> None:
        for user in range(12):
            session = SessionStore()
            session[SESSION_KEY] = str(user % 4)
            session.save()
        for _ in range(6):
            SessionStore().create()
        summary = operations.summarize()
        assert (summary.total, summary.authenticated, summary.users) == (18, 12, 4)
        # (sessions ended, keys skipped as not sessions)
        assert operations.purge_matching(operations.anonymous, dry_run=False) == (6, 0)
        assert operations.purge_user("2", dry_run=False) == (3, 0)
        assert operations.purge_all(dry_run=False) == (9, 0)
        assert operations.summarize().total == 0

    def test_bulk_tools_skip_keys_that_are_not_sessions_on_every_primary(self) -> None:
        foreign = [keys.session_name(f"foreign{i}") for i in range(8)]
        for name in foreign:  # names of many slots: on a cluster, on every primary
            self.redis.rpush(name, b"x")
        self.redis.set(keys.user_index_name("13"), b"not an index")
        session = SessionStore()
        session[SESSION_KEY] = "12"
        session.save()
        assert operations.summarize().skipped == 9
        assert operations.purge_matching(operations.anonymous, dry_run=False) == (0, 8)
        assert operations.purge_all(dry_run=False) == (1, 9)
        assert all(self.redis.lrange(name, 0, -1) == [b"x"] for name in foreign)
        assert self.redis.get(keys.user_index_name("13")) == b"not an index"
        for name in [*foreign, keys.user_index_name("13")]:
            self.redis.delete(name)

    def test_threads_changing_different_keys_lose_no_update(self) -> None:
        session = SessionStore()
        session["start"] = True
        session.save()
        key = session.session_key

        def work(worker: int) -> None:
            for i in range(15):
                mine = SessionStore(key)
                mine[f"w{worker}-{i}"] = i
                mine.save()

        run_threads(4, work)
        data = SessionStore(key).load()
        assert {f"w{w}-{i}" for w in range(4) for i in range(15)} <= set(data)

    def test_secret_key_rotation_moves_the_session(self, settings: Any) -> None:
        # Reads every fallback name in one pipeline: keys in different slots on a cluster.
        settings.SECRET_KEY = "old-secret-" + "x" * 40
        session = SessionStore()
        session["a"] = 1
        session.save()
        settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY, "older-" + "y" * 40]
        settings.SECRET_KEY = "new-secret-" + "z" * 40
        assert SessionStore(session.session_key)["a"] == 1
        assert self.redis.exists(stored_name(session)) == 1  # now under the new secret's name

    @needs_async_api
    async def test_async_contract(self) -> None:
        session = SessionStore()
        await session.aset("a", 1)
        await session.asave()
        key = session.session_key
        assert await SessionStore(key).aget("a") == 1
        assert await session.aexists(key)
        await session.aset(SESSION_KEY, "7")
        await session.asave()
        assert index_members(self.redis, "7") == {keys.session_id(key or "")}
        assert [info.id for info in await auser_sessions("7")] == [keys.session_id(key or "")]
        await session.acycle_key()
        assert not await session.aexists(key)
        assert await SessionStore(session.session_key).aget("a") == 1
        await session.aflush()
        assert index_members(self.redis, "7") == set()
        assert not await SessionStore().aexists(session.session_key)
