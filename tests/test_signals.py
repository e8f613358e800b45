"""``session_ended``: sent once per session the package ends, after the deletion, with a reason;
never for a session that was not there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model

import django_redisstore
from django_redisstore import keys, signals
from django_redisstore.clients import get_client
from django_redisstore.session import SessionStore

from .command_helpers import alive, make_session, sessions
from .django_versions import needs_async_api

#: (user_id, session_id, reason) of a signal received.
Event = tuple[str | None, str, str]


def sid_of(session: SessionStore) -> str:
    assert session.session_key is not None
    return keys.session_id(session.session_key)


class Receiver:
    """Records each ``session_ended`` and whether the session was still in Redis then."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.still_there: list[str] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        assert sender == signals.SENDER
        assert set(kwargs) == {"signal", "user_id", "session_id", "reason"}
        sid = kwargs["session_id"]
        if get_client().exists(keys.session_name(sid)):
            self.still_there.append(sid)
        self.events.append((kwargs["user_id"], sid, kwargs["reason"]))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received = Receiver()
    signals.session_ended.connect(received, weak=False)
    yield received
    signals.session_ended.disconnect(received)
    assert received.still_there == [], "a signal came before its session was deleted"


def test_end_user_sessions_sends_one_user_event_per_ended_session(receiver: Receiver) -> None:
    first, second, kept = make_session(7), make_session(7), make_session(7)
    other = make_session(8)

    assert django_redisstore.end_user_sessions(7, keep=kept.session_key) == 2

    assert sorted(receiver.events) == sorted(
        [("7", sid_of(first), "user"), ("7", sid_of(second), "user")]
    )
    assert alive(kept) and alive(other)


def test_the_reason_is_passed_on(receiver: Receiver) -> None:
    session = make_session(7)

    django_redisstore.end_user_sessions(7, reason=signals.ADMIN)

    assert receiver.events == [("7", sid_of(session), "admin")]


def test_an_unknown_reason_is_refused_before_anything_is_ended(receiver: Receiver) -> None:
    session = make_session(7)

    with pytest.raises(ValueError, match="unknown session_ended reason"):
        django_redisstore.end_user_sessions(7, reason="bored")

    assert alive(session) and receiver.events == []


def test_no_event_for_an_id_that_is_not_the_users_or_is_gone(
    receiver: Receiver, redis_client: redis.Redis
) -> None:
    mine, theirs = make_session(7), make_session(8)
    vanished = make_session(7)
    redis_client.delete(keys.session_name(sid_of(vanished)))  # its index entry stays

    ended = django_redisstore.end_user_sessions(7, ids={sid_of(theirs), sid_of(vanished)})

    assert ended == 0 and receiver.events == []
    assert alive(mine) and alive(theirs)


def test_no_event_for_a_session_deleted_between_the_read_and_the_unlink(
    receiver: Receiver, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UNLINK reply decides: a session listed as live but gone by then sends nothing."""
    from django_redisstore import index

    kept, raced = make_session(7), make_session(7)
    flow = index._end_flow

    def racing_flow(*args: Any) -> Any:
        steps = flow(*args)
        calls = next(steps)
        while True:
            if any(call.args[0] == "UNLINK" for call in calls if call.args):
                redis_client.delete(keys.session_name(sid_of(raced)))
            try:
                calls = steps.send((yield calls))
            except StopIteration as done:
                return done.value

    monkeypatch.setattr(index, "_end_flow", racing_flow)
    assert django_redisstore.end_user_sessions(7, keep=kept.session_key) == 0
    assert receiver.events == []


async def test_the_async_twin_sends_the_same_events(receiver: Receiver) -> None:
    first, kept = make_session(7), make_session(7)
    async_events: list[Event] = []

    async def async_receiver(sender: Any, **kwargs: Any) -> None:
        async_events.append((kwargs["user_id"], kwargs["session_id"], kwargs["reason"]))

    signals.session_ended.connect(async_receiver, weak=False)
    try:
        ended = await django_redisstore.aend_user_sessions(
            7, keep=kept.session_key, reason=signals.ADMIN
        )
    finally:
        signals.session_ended.disconnect(async_receiver)

    assert ended == 1
    assert receiver.events == async_events == [("7", sid_of(first), "admin")]
    assert alive(kept)


def test_an_async_receiver_is_awaited_by_the_sync_api_too() -> None:
    session = make_session(7)
    events: list[Event] = []

    async def async_receiver(sender: Any, **kwargs: Any) -> None:
        events.append((kwargs["user_id"], kwargs["session_id"], kwargs["reason"]))

    signals.session_ended.connect(async_receiver, weak=False)
    try:
        assert django_redisstore.end_user_sessions(7) == 1
    finally:
        signals.session_ended.disconnect(async_receiver)

    assert events == [("7", sid_of(session), "user")]


@pytest.mark.django_db
def test_purge_by_user_sends_purge_events(receiver: Receiver) -> None:
    user = get_user_model().objects.create_user("linus", password="pw")
    session = make_session(user.pk)

    sessions("purge", "--user", "linus", "--yes")

    assert receiver.events == [(str(user.pk), sid_of(session), "purge")]


def test_purge_by_key_sends_one_purge_event(receiver: Receiver) -> None:
    doomed, kept = make_session(3), make_session(3)
    assert doomed.session_key is not None

    sessions("purge", "--key", doomed.session_key, "--yes")
    sessions("purge", "--key", doomed.session_key, "--yes")  # gone: nothing more

    assert receiver.events == [("3", sid_of(doomed), "purge")]
    assert alive(kept)


def test_purge_by_selector_sends_purge_events_with_the_user_when_signed_in(
    receiver: Receiver,
) -> None:
    from django_redisstore import operations

    anonymous, signed_in, spared = make_session(), make_session(4), make_session(5)
    chosen = {sid_of(anonymous), sid_of(signed_in)}

    ended = operations.purge_matching(
        lambda seen, now: seen.name.decode().rsplit(":", 1)[1] in chosen, dry_run=False
    )

    assert ended.sessions == 2
    assert sorted(receiver.events, key=str) == sorted(
        [(None, sid_of(anonymous), "purge"), ("4", sid_of(signed_in), "purge")], key=str
    )
    assert alive(spared)


def test_purge_all_sends_one_purge_event_per_session_with_its_user(
    receiver: Receiver, redis_client: redis.Redis
) -> None:
    anonymous, first, second = make_session(), make_session(4), make_session(4)
    unindexed = make_session(5)
    redis_client.delete(keys.user_index_name("5"))  # found by the scan alone

    assert sessions("purge", "--all", "--yes").strip() == "Ended 4 sessions."

    assert sorted(receiver.events, key=str) == sorted(
        [
            (None, sid_of(anonymous), "purge"),
            ("4", sid_of(first), "purge"),
            ("4", sid_of(second), "purge"),
            ("5", sid_of(unindexed), "purge"),
        ],
        key=str,
    )
    assert not any(alive(s) for s in (anonymous, first, second, unindexed))


@pytest.mark.usefixtures("on_cluster")
def test_on_a_cluster_the_events_come_once_per_session_too(receiver: Receiver) -> None:
    mine = [make_session(4) for _ in range(5)]
    anonymous = [make_session() for _ in range(5)]

    assert django_redisstore.end_user_sessions(4, keep=mine[0].session_key) == 4
    sessions("purge", "--all", "--yes")

    expected = [("4", sid_of(s), "user") for s in mine[1:]]
    expected += [("4", sid_of(mine[0]), "purge")]
    expected += [(None, sid_of(s), "purge") for s in anonymous]
    assert sorted(receiver.events, key=str) == sorted(expected, key=str)


# The engine's own endings: logout, timeout (the limit's are in test_limit.py) -----------------


def test_flush_of_a_signed_in_session_sends_one_logout_event(receiver: Receiver) -> None:
    session = SessionStore(make_session(7).session_key)
    assert session["_auth_user_id"] == "7"
    sid = sid_of(session)

    session.flush()
    session.flush()  # nothing left to end

    assert receiver.events == [("7", sid, "logout")]


def test_delete_of_a_session_this_store_never_read_sends_logout_too(receiver: Receiver) -> None:
    session = make_session(7)
    sid = sid_of(session)

    SessionStore().delete(session.session_key)

    assert receiver.events == [("7", sid, "logout")]


def test_no_logout_event_for_an_anonymous_session_or_one_already_gone(
    receiver: Receiver, redis_client: redis.Redis
) -> None:
    anonymous = SessionStore(make_session(a=1).session_key)
    anonymous.load()
    anonymous.flush()
    vanished = SessionStore(make_session(7).session_key)
    vanished.load()
    redis_client.delete(keys.session_name(sid_of(vanished)))  # ended elsewhere meanwhile

    vanished.flush()

    assert receiver.events == []


def past_its_deadline(settings: Any, monkeypatch: pytest.MonkeyPatch, **data: Any) -> str:
    """The key of a session created 100 s ago, now past REDISSTORE_ABSOLUTE_TIMEOUT (50 s)."""
    import time
    from types import SimpleNamespace

    from django_redisstore import storage

    monkeypatch.setattr(storage, "time", SimpleNamespace(time=lambda: time.time() - 100))
    key = make_session(**data).session_key
    monkeypatch.undo()
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 50
    assert key is not None
    return key


def test_a_session_found_past_its_absolute_deadline_sends_one_timeout_event(
    receiver: Receiver, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = past_its_deadline(settings, monkeypatch, user_id=7)

    assert SessionStore(key).load() == {}
    assert SessionStore(key).load() == {}  # gone: nothing more

    assert receiver.events == [("7", keys.session_id(key), "timeout")]


@needs_async_api
async def test_the_async_api_sends_logout_and_timeout_events_too(
    receiver: Receiver, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = SessionStore(make_session(7).session_key)
    await session.aload()
    signed_out = sid_of(session)
    await session.aflush()
    key = past_its_deadline(settings, monkeypatch)  # anonymous: user_id None

    assert await SessionStore(key).aload() == {}

    assert receiver.events == [
        ("7", signed_out, "logout"),
        (None, keys.session_id(key), "timeout"),
    ]
