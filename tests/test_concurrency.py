"""Parallel requests of one session: nobody's change is lost, and a deleted session stays gone.

Every test here runs against the real test server: the conflicts are real conditional writes that
Redis refuses, not simulated ones. ``merge.merge`` is also checked on its own, as a property.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from hypothesis import given, settings
from hypothesis import strategies as st

from django_redisstore import clients, flows, keys, merge, scripts, storage
from django_redisstore.exceptions import SaveConflict
from django_redisstore.flows import Call, Flow, Pause
from django_redisstore.session import SessionStore

from .command_helpers import saved_key
from .django_versions import needs_async_api
from .threads import run_threads

THREADS = 8
ROUNDS = 50


def _loaded(session_key: str) -> SessionStore:
    """A store for ``session_key`` that has read its record, as a request does on first access."""
    session = SessionStore(session_key)
    session._get_session()
    return session


# Different keys: everybody keeps their change ----------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "sliding expiry", "signed in"])
def test_threads_changing_different_keys_all_keep_their_changes(
    kind: str, settings: Any, redis_client: redis.Redis
) -> None:
    # "sliding expiry" reads with the sliding script; "signed in" keeps the user index up in
    # the same pipeline as every (conflicting) save.
    settings.SESSION_SAVE_EVERY_REQUEST = kind == "sliding expiry"
    initial: dict[str, Any] = {"shared": "untouched"}
    if kind == "signed in":
        initial.update(_login_data(7, "backend.B", "hash-7"))
    session_key = saved_key(**initial)
    barrier = threading.Barrier(THREADS, timeout=60)

    def request(i: int) -> None:
        for r in range(ROUNDS):
            session = SessionStore(session_key)
            assert session["shared"] == "untouched"  # the load happens here
            barrier.wait()  # every thread has read the same version before anyone saves
            session[f"t{i}r{r}"] = r
            session[f"last{i}"] = r
            session.save()
            barrier.wait()  # everyone saved: the next round reads the merged result

    run_threads(THREADS, request, barrier)

    final = SessionStore(session_key).load()
    assert {k: final.pop(k) for k in initial} == initial
    for i in range(THREADS):
        assert final.pop(f"last{i}") == ROUNDS - 1
    assert final == {f"t{i}r{r}": r for i in range(THREADS) for r in range(ROUNDS)}
    name = keys.session_name(keys.session_id(session_key))
    assert redis_client.pttl(name) > 0
    if kind == "signed in":
        index = redis_client.zrange(keys.user_index_name("7"), 0, -1)
        assert index == [name.rsplit(":", 1)[1].encode()]


def test_many_more_parallel_writers_than_a_browser_opens_over_http1_all_succeed() -> None:
    # HTTP/2 multiplexes many requests of one page at once: 48 saves from one read each must
    # all get through (every refused attempt is another request's success, so none starves).
    writers = 48
    session_key = saved_key()
    barrier = threading.Barrier(writers, timeout=60)

    def request(i: int) -> None:
        for r in range(3):
            session = SessionStore(session_key)
            session._get_session()
            barrier.wait()
            session[f"w{i}r{r}"] = r
            session.save()
            barrier.wait()

    run_threads(writers, request, barrier)
    final = SessionStore(session_key).load()
    assert final == {f"w{i}r{r}": r for i in range(writers) for r in range(3)}


def test_threads_writing_counters_of_their_own_lose_no_increment() -> None:
    # Each thread keeps a counter of its own and increments it from what it read: a lost update
    # would show as a counter behind the number of rounds.
    session_key = saved_key()
    barrier = threading.Barrier(THREADS, timeout=60)

    def request(i: int) -> None:
        for _ in range(ROUNDS):
            session = SessionStore(session_key)
            count = session.get(f"count{i}", 0)
            barrier.wait()
            session[f"count{i}"] = count + 1
            session.save()

    run_threads(THREADS, request, barrier)
    final = SessionStore(session_key).load()
    assert final == {f"count{i}": ROUNDS for i in range(THREADS)}


class _AsyncBarrier:
    """``asyncio.Barrier`` for Python 3.10 (it arrived in 3.11): all tasks wait for the last."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.generation = asyncio.Event()

    async def wait(self) -> None:
        event = self.generation
        self.arrived += 1
        if self.arrived == self.parties:
            self.arrived = 0
            self.generation = asyncio.Event()
            event.set()
        else:
            await event.wait()


@needs_async_api
async def test_async_tasks_changing_different_keys_all_keep_their_changes() -> None:
    session = SessionStore()
    await session.aset("shared", "untouched")
    await session.asave()
    session_key = session.session_key
    assert session_key is not None
    barrier = _AsyncBarrier(THREADS)

    async def request(i: int) -> None:
        for r in range(ROUNDS):
            store = SessionStore(session_key)
            assert await store.aget("shared") == "untouched"
            await barrier.wait()
            await store.aset(f"t{i}r{r}", r)
            await store.asave()
            await barrier.wait()

    await asyncio.wait_for(asyncio.gather(*(request(i) for i in range(THREADS))), 120)

    final = await SessionStore(session_key).aload()
    assert final["shared"] == "untouched"
    assert {k: v for k, v in final.items() if k != "shared"} == {
        f"t{i}r{r}": r for i in range(THREADS) for r in range(ROUNDS)
    }


@needs_async_api
def test_threads_and_async_tasks_together_keep_every_change() -> None:
    # The sync and async clients are separate connections: their conditional writes still
    # see each other.
    session_key = saved_key()
    barrier = threading.Barrier(THREADS + 1, timeout=60)

    def thread_request(i: int) -> None:
        for r in range(ROUNDS):
            session = SessionStore(session_key)
            session._get_session()
            barrier.wait()
            session[f"thread{i}-{r}"] = r
            session.save()

    async def async_rounds() -> None:
        for r in range(ROUNDS):
            store = SessionStore(session_key)
            await store.aget("anything")  # the load happens here
            await asyncio.to_thread(barrier.wait)
            await store.aset(f"task-{r}", r)
            await store.asave()
        await clients.aclose()

    threads = [threading.Thread(target=thread_request, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        asyncio.run(async_rounds())
    finally:
        for thread in threads:
            thread.join(120)
    final = SessionStore(session_key).load()
    expected = {f"thread{i}-{r}": r for i in range(THREADS) for r in range(ROUNDS)}
    expected.update({f"task-{r}": r for r in range(ROUNDS)})
    assert final == expected


# The same key: the later save wins ---------------------------------------------------------------


def test_same_key_the_later_save_wins() -> None:
    session_key = saved_key(colour="red")
    first, second = _loaded(session_key), _loaded(session_key)
    first["colour"] = "green"
    second["colour"] = "blue"
    first.save()
    second.save()
    assert SessionStore(session_key).load() == {"colour": "blue"}

    first, second = _loaded(session_key), _loaded(session_key)
    first["colour"] = "green"
    second["colour"] = "yellow"
    second.save()
    first.save()
    assert SessionStore(session_key).load() == {"colour": "green"}


def test_same_key_from_threads_ends_with_one_of_the_written_values() -> None:
    session_key = saved_key()
    barrier = threading.Barrier(THREADS, timeout=60)
    order: list[int] = []
    lock = threading.Lock()

    def request(i: int) -> None:
        session = SessionStore(session_key)
        session._get_session()
        barrier.wait()
        session["winner"] = i
        with lock:  # saves in a known order: the last one must be what stays
            session.save()
            order.append(i)

    run_threads(THREADS, request, barrier)
    assert SessionStore(session_key).load() == {"winner": order[-1]}


def test_a_deleted_key_stays_deleted_while_another_request_changes_another_key() -> None:
    for deleter_first in (True, False):
        session_key = saved_key(cart="3 items", theme="dark")
        deleter, changer = _loaded(session_key), _loaded(session_key)
        del deleter["cart"]
        changer["theme"] = "light"
        for store in (deleter, changer) if deleter_first else (changer, deleter):
            store.save()
        assert SessionStore(session_key).load() == {"theme": "light"}, deleter_first


def test_a_key_deleted_on_one_side_and_changed_on_the_other_follows_the_later_save() -> None:
    session_key = saved_key(cart="3 items")
    deleter, changer = _loaded(session_key), _loaded(session_key)
    del deleter["cart"]
    changer["cart"] = "4 items"
    changer.save()
    deleter.save()
    assert SessionStore(session_key).load() == {}


def test_a_merged_save_leaves_the_store_consistent_for_its_next_save() -> None:
    # After a merge, the store holds the merged data and the new version: saving again from it
    # must neither conflict forever nor drop the other side's change.
    session_key = saved_key(a=1)
    first, second = _loaded(session_key), _loaded(session_key)
    first["b"] = 2
    first.save()
    second["c"] = 3
    second.save()
    assert second["b"] == 2
    second["d"] = 4
    second.save()
    assert SessionStore(session_key).load() == {"a": 1, "b": 2, "c": 3, "d": 4}


# A session deleted elsewhere stays deleted -------------------------------------------------------


@pytest.mark.parametrize("how", ["delete", "flush", "cycle_key"])
def test_a_save_after_the_session_was_removed_elsewhere_raises_and_does_not_revive_it(
    how: str, redis_client: redis.Redis
) -> None:
    session_key = saved_key(user="alice")
    late = _loaded(session_key)
    other = _loaded(session_key)
    getattr(other, how)()  # a logout (or a key rotation) in another tab
    late["visits"] = 2
    with pytest.raises(UpdateError):
        late.save()
    assert not SessionStore().exists(session_key)
    assert redis_client.exists(keys.session_name(keys.session_id(session_key))) == 0


def test_a_save_racing_a_delete_from_threads_never_revives_the_session(
    redis_client: redis.Redis,
) -> None:
    for _ in range(20):
        session_key = saved_key(user="alice")
        barrier = threading.Barrier(THREADS, timeout=60)
        outcomes: list[str] = []

        def request(
            i: int,
            session_key: str = session_key,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
        ) -> None:
            session = SessionStore(session_key)
            session._get_session()
            barrier.wait()
            if i == 0:
                session.delete()
                outcomes.append("deleted")
                return
            session[f"k{i}"] = i
            try:
                session.save()
            except UpdateError:
                outcomes.append("refused")
            else:
                outcomes.append("saved")

        run_threads(THREADS, request, barrier)
        name = keys.session_name(keys.session_id(session_key))
        assert redis_client.exists(name) == 0
        assert "deleted" in outcomes


@needs_async_api
async def test_an_async_save_after_the_session_was_deleted_raises() -> None:
    session = SessionStore()
    await session.aset("user", "alice")
    await session.asave()
    session_key = session.session_key
    late = SessionStore(session_key)
    assert await late.aget("user") == "alice"
    await SessionStore(session_key).adelete(session_key)
    await late.aset("visits", 2)
    with pytest.raises(UpdateError):
        await late.asave()
    assert not await SessionStore().aexists(session_key)


def _logout_elsewhere_then_write(request: HttpRequest) -> HttpResponse:
    """The view of a request that was still running when another tab signed out."""
    request.session["seen"] = True  # load and change the session
    SessionStore().delete(request.session.session_key)  # the other tab's logout
    request.session["late"] = "write"
    return HttpResponse("done")


urlpatterns = [path("late/", _logout_elsewhere_then_write)]


def test_middleware_turns_a_save_after_logout_into_http_400(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.ROOT_URLCONF = __name__
    session_key = saved_key(user="alice")
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    response = client.get("/late/")
    assert response.status_code == 400  # SessionInterrupted, a SuspiciousOperation
    assert redis_client.exists(keys.session_name(keys.session_id(session_key))) == 0
    assert not SessionStore().exists(session_key)


# Login data is never mixed from two sides --------------------------------------------------------


def _login_data(user: int, backend: str, hash_: str) -> dict[str, str]:
    return {SESSION_KEY: str(user), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: hash_}


def _auth_of(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in merge.AUTH_KEYS}


def test_a_password_change_and_a_login_on_the_other_side_are_not_mixed() -> None:
    # A changes only the hash (update_session_auth_hash); B logs in as somebody else. Taking A's
    # hash with B's user id would pair a user with another user's password hash.
    alice = _login_data(1, "django.contrib.auth.backends.ModelBackend", "hash-alice")
    bob = _login_data(2, "custom.Backend", "hash-bob")
    for a_first in (True, False):
        session_key = saved_key(**alice, cart=1)
        password_change, login = _loaded(session_key), _loaded(session_key)
        password_change[HASH_SESSION_KEY] = "hash-alice-2"
        login.update(bob)
        saves = (password_change, login) if a_first else (login, password_change)
        for store in saves:
            store.save()
        final = SessionStore(session_key).load()
        expected = dict(alice, **{HASH_SESSION_KEY: "hash-alice-2"}) if not a_first else bob
        assert _auth_of(final) == expected, a_first
        assert final["cart"] == 1


def test_a_logout_style_removal_and_a_login_are_not_mixed() -> None:
    alice = _login_data(1, "backend.A", "hash-alice")
    bob = _login_data(2, "backend.B", "hash-bob")
    session_key = saved_key(**alice)
    removal, login = _loaded(session_key), _loaded(session_key)
    del removal[SESSION_KEY]  # a view that drops the user id only
    login.update(bob)
    login.save()
    removal.save()
    # The later side removed the user id: its whole auth state (only the other two keys, as
    # they were) wins, not bob's backend and hash under no user.
    final = SessionStore(session_key).load()
    assert _auth_of(final) == {k: v for k, v in alice.items() if k != SESSION_KEY}


def test_threads_logging_in_as_different_users_leave_one_whole_login() -> None:
    for _ in range(10):
        session_key = saved_key(**_login_data(0, "backend.0", "hash-0"))
        barrier = threading.Barrier(THREADS, timeout=60)

        def request(
            i: int, session_key: str = session_key, barrier: threading.Barrier = barrier
        ) -> None:
            session = SessionStore(session_key)
            session._get_session()
            barrier.wait()
            # One side changes all three, the next only the hash, the next user and backend.
            data = _login_data(i, f"backend.{i}", f"hash-{i}")
            if i % 3 == 1:
                del data[SESSION_KEY], data[BACKEND_SESSION_KEY]
            elif i % 3 == 2:
                del data[HASH_SESSION_KEY]
            session.update(data)
            session[f"mine{i}"] = True
            session.save()

        run_threads(THREADS, request, barrier)
        final = SessionStore(session_key).load()
        # Whoever saved last, the three values are that request's own view of the session: a
        # hash-only change keeps user 0 with its new hash, never another side's user.
        views = []
        for i in range(THREADS):
            view = _login_data(0, "backend.0", "hash-0")
            if i % 3 != 2:
                view[HASH_SESSION_KEY] = f"hash-{i}"
            if i % 3 != 1:
                view[SESSION_KEY], view[BACKEND_SESSION_KEY] = str(i), f"backend.{i}"
            views.append(view)
        assert _auth_of(final) in views
        assert all(final[f"mine{i}"] for i in range(THREADS))


# merge.merge on its own --------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "d", "e", *sorted(merge.AUTH_KEYS)])
_values = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.none())
_dicts = st.dictionaries(_names, _values, max_size=8)


@settings(deadline=None)  # a GC pause elsewhere in the suite is no failure
@given(base=_dicts, ours=_dicts, theirs=_dicts)
def test_merge_keeps_each_sides_own_changes(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    missing = object()
    merged = merge.merge(base, ours, theirs)

    def changed(side: dict[str, Any], key: str) -> bool:
        return base.get(key, missing) != side.get(key, missing)

    ours_touch_auth = any(changed(ours, k) for k in merge.AUTH_KEYS)
    for key in base.keys() | ours.keys() | theirs.keys():
        if key in merge.AUTH_KEYS:
            source = ours if ours_touch_auth else theirs
        elif changed(ours, key):
            source = ours  # only ours changed it, or both did and ours is the later save
        else:
            source = theirs  # only theirs changed it, or nobody did (then theirs == base)
        assert merged.get(key, missing) == source.get(key, missing), key
    assert set(merged) <= base.keys() | ours.keys() | theirs.keys()


@settings(deadline=None)  # a GC pause elsewhere in the suite is no failure
@given(base=_dicts, ours=_dicts)
def test_merge_with_nobody_else_writing_gives_ours(
    base: dict[str, Any], ours: dict[str, Any]
) -> None:
    assert merge.merge(base, ours, dict(base)) == ours


@settings(deadline=None)  # a GC pause elsewhere in the suite is no failure
@given(base=_dicts, theirs=_dicts)
def test_merge_with_no_change_of_ours_gives_theirs(
    base: dict[str, Any], theirs: dict[str, Any]
) -> None:
    assert merge.merge(base, dict(base), theirs) == theirs


def test_merge_does_not_modify_its_arguments() -> None:
    base, ours, theirs = {"a": 1}, {"a": 2}, {"a": 1, "b": 3}
    merge.merge(base, ours, theirs)
    assert (base, ours, theirs) == ({"a": 1}, {"a": 2}, {"a": 1, "b": 3})


def test_changed_keys_widens_any_auth_change_to_all_auth_keys() -> None:
    base = _login_data(1, "b", "h")
    assert merge.changed_keys(base, dict(base, **{HASH_SESSION_KEY: "h2"})) == set(merge.AUTH_KEYS)
    assert merge.changed_keys(base, dict(base, other=1)) == {"other"}


# Side state kept with the data: the user index, the expiry ---------------------------------------


@pytest.mark.parametrize("a_first", [True, False])
def test_two_logins_racing_leave_the_session_in_the_winners_index_only(
    a_first: bool, redis_client: redis.Redis
) -> None:
    session_key = saved_key(cart=1)
    a, b = _loaded(session_key), _loaded(session_key)
    a.update(_login_data(1, "backend.A", "hash-1"))
    b.update(_login_data(2, "backend.B", "hash-2"))
    for store in (a, b) if a_first else (b, a):
        store.save()
    winner, loser = ("2", "1") if a_first else ("1", "2")
    final = SessionStore(session_key).load()
    assert final[SESSION_KEY] == winner
    sid = keys.session_id(session_key).encode()
    assert redis_client.zscore(keys.user_index_name(winner), sid) is not None
    assert redis_client.zscore(keys.user_index_name(loser), sid) is None


def test_an_expiry_set_on_one_side_survives_a_change_on_the_other(
    redis_client: redis.Redis,
) -> None:
    session_key = saved_key(a=1)
    name = keys.session_name(keys.session_id(session_key))
    remember, other = _loaded(session_key), _loaded(session_key)
    remember.set_expiry(30 * 86400)  # "remember me" in one tab
    other["b"] = 2  # anything in another
    remember.save()
    other.save()
    final = SessionStore(session_key)
    assert final.load()["b"] == 2
    assert final.get_expiry_age() == 30 * 86400
    assert redis_client.pttl(name) > 29 * 86400 * 1000  # the later save kept the long TTL


def test_two_requests_moving_a_session_after_key_rotation_both_keep_their_changes(
    settings: Any, redis_client: redis.Redis
) -> None:
    settings.SECRET_KEY = "the-old-secret-key-of-this-site"
    session_key = saved_key(a=1)
    old_name = keys.session_name(keys.session_id(session_key))
    settings.SECRET_KEY = "the-new-secret-key-of-this-site"
    settings.SECRET_KEY_FALLBACKS = ["the-old-secret-key-of-this-site"]
    barrier = threading.Barrier(THREADS, timeout=60)

    def request(i: int) -> None:
        session = SessionStore(session_key)
        assert session["a"] == 1  # read from under the old name; one of them moves it
        barrier.wait()
        session[f"k{i}"] = i
        session.save()

    run_threads(THREADS, request, barrier)
    assert SessionStore(session_key).load() == {"a": 1, **{f"k{i}": i for i in range(THREADS)}}
    assert redis_client.exists(old_name) == 0


def test_reads_racing_the_move_after_key_rotation_never_see_an_empty_session(
    settings: Any,
) -> None:
    # A reader that misses the record under the new name, then finds the old name already
    # deleted by the request that moved it, must still find it: else the user is signed out.
    settings.SECRET_KEY = "the-old-secret-key-of-this-site"
    session_keys = [saved_key(a=i) for i in range(30)]
    settings.SECRET_KEY = "the-new-secret-key-of-this-site"
    settings.SECRET_KEY_FALLBACKS = ["the-old-secret-key-of-this-site"]
    for n, session_key in enumerate(session_keys):
        barrier = threading.Barrier(THREADS, timeout=60)

        def request(
            i: int,
            session_key: str = session_key,
            barrier: threading.Barrier = barrier,
            n: int = n,
        ) -> None:
            barrier.wait()
            session = SessionStore(session_key)
            assert session.load() == {"a": n}, f"reader {i} found no session"
            assert session.session_key == session_key

        run_threads(THREADS, request, barrier)


class _Stepper:
    """A flow driven by hand, batch by batch: a test runs other requests between two batches."""

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow
        self.step: list[Call] | Pause = next(flow)
        self.done = False
        self.result: Any = None

    def run(self, stop: Callable[[list[Call] | Pause], bool] = lambda step: False) -> None:
        """Send the flow's batches (pauses skipped) until it ends, or ``stop`` says "before
        this step"."""
        while not self.done and not stop(self.step):
            self.advance()

    def advance(self) -> None:
        """Send the flow's current step (a pause is skipped, not slept)."""
        client = clients.get_client()
        try:
            replies = [] if isinstance(self.step, Pause) else flows.execute(client, self.step)
            self.step = self.flow.send(replies)
        except StopIteration as end:
            self.done, self.result = True, end.value


def _writes(step: list[Call] | Pause) -> bool:
    return isinstance(step, list) and any(call.args[0] != "GET" for call in step)


def _rotated_session(settings: Any, **data: Any) -> tuple[str, str, str]:
    """A session saved under an old secret, the secret then rotated: its key, old and new name."""
    settings.SECRET_KEY = "the-old-secret-key-of-this-site"
    session_key = saved_key(**data)
    old_name = keys.session_name(keys.session_id(session_key))
    settings.SECRET_KEY = "the-new-secret-key-of-this-site"
    settings.SECRET_KEY_FALLBACKS = ["the-old-secret-key-of-this-site"]
    return session_key, old_name, keys.session_name(keys.session_id(session_key))


def _claimed(session_key: str) -> _Stepper:
    """A request's read of a rotated session, stopped after it claimed the old record for the
    move and before it writes today's name."""
    mover = _Stepper(storage.load_flow(SessionStore(session_key)))
    mover.run(stop=lambda step: _writes(step) and step[0].script is not scripts.CLAIM)
    return mover


def test_a_logout_after_a_parallel_move_is_not_undone_by_the_request_that_read_first(
    settings: Any, redis_client: redis.Redis
) -> None:
    # Request A reads the record under the fallback secret's name and is about to move it;
    # request B moves it and logs out; A must not write the session back under today's name.
    data = _login_data(5, "backend.B", "hash-5")
    session_key, old_name, new_name = _rotated_session(settings, **data)
    a = SessionStore(session_key)
    mover = _Stepper(storage.load_flow(a))
    mover.run(stop=_writes)  # A has read the old record; its next batch would write
    assert not mover.done

    b = SessionStore(session_key)
    assert b.load() == data  # B moves it under today's name...
    assert redis_client.exists(new_name) == 1
    b.flush()  # ... and logs out
    assert redis_client.exists(new_name) == 0

    mover.run()  # A goes on
    assert mover.done
    assert mover.result == {}  # A sees the session ended, as a request after the logout does
    assert a.session_key is None
    assert redis_client.exists(new_name) == 0
    assert redis_client.exists(old_name) == 0
    assert redis_client.exists(keys.user_index_name("5")) == 0
    assert SessionStore(session_key).load() == {}


def test_a_read_during_a_parallel_move_waits_for_it_and_finds_the_session(
    settings: Any, redis_client: redis.Redis
) -> None:
    # Between the move's claim of the old name and its write of today's name, neither name
    # holds a record: a reader there sees the claim's marker and reads again.
    session_key, old_name, new_name = _rotated_session(settings, a=1)
    mover = _claimed(session_key)
    assert redis_client.get(old_name) == storage.MOVING  # claimed, today's name not written
    assert redis_client.exists(new_name) == 0

    reader_store = SessionStore(session_key)
    reader = _Stepper(storage.load_flow(reader_store))
    reader.run(stop=lambda step: isinstance(step, Pause))  # it found the marker: it waits
    assert not reader.done

    mover.run()
    assert mover.result == {"a": 1}
    reader.run()
    assert reader.result == {"a": 1}
    assert reader_store.session_key == session_key
    assert redis_client.exists(old_name) == 0
    assert redis_client.exists(new_name) == 1


def test_a_move_abandoned_after_its_claim_loses_the_session_and_brings_nothing_back(
    settings: Any, redis_client: redis.Redis
) -> None:
    # A process that dies between the claim and its write: the session is lost (the user signs
    # in again), never half-restored; the marker expires on its own.
    session_key, old_name, new_name = _rotated_session(settings, a=1)
    mover = _claimed(session_key)
    mover.flow.close()
    assert 0 < redis_client.pttl(old_name) <= 10_000
    reader = SessionStore(session_key)
    assert reader.load() == {}
    assert reader.session_key is None
    assert redis_client.exists(new_name) == 0


# Conflict retries are bounded -----------------------------------------------------------------


def _saves(step: list[Call] | Pause) -> bool:
    return isinstance(step, list) and any(call.script is scripts.SAVE for call in step)


def _save_against_rivals(session_key: str, rivals: int) -> tuple[_Stepper, SessionStore]:
    """A store's save of ``mine``, while another request saves before each of its first
    ``rivals`` tries: every one of those tries conflicts."""
    store = _loaded(session_key)
    store["mine"] = 1
    saver = _Stepper(storage.save_flow(store, store._session, False))
    for n in range(rivals):
        saver.run(stop=_saves)
        rival = _loaded(session_key)
        rival[f"rival{n}"] = n
        rival.save()
        saver.advance()
    saver.run()
    return saver, store


def test_a_save_that_conflicts_a_few_times_merges_and_lands() -> None:
    session_key = saved_key(a=1)
    saver, _ = _save_against_rivals(session_key, 3)  # the later tries pause, then read again
    assert saver.done
    assert SessionStore(session_key).load() == {
        "a": 1,
        "mine": 1,
        "rival0": 0,
        "rival1": 1,
        "rival2": 2,
    }


def test_a_save_gives_up_past_its_byte_budget_and_writes_nothing(
    settings: Any, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    session_key = saved_key(text=secrets.token_urlsafe(30_000))
    record = redis_client.strlen(keys.session_name(keys.session_id(session_key)))
    # The first refused try moves ours and theirs (2 records), the second ours, a MAC and
    # theirs read after the pause (2 more): a third would pass 4.5 records.
    settings.REDISSTORE_SAVE_BUDGET = 9 * record // 2
    with (
        caplog.at_level(logging.WARNING, logger="django_redisstore"),
        pytest.raises(SaveConflict, match=r"REDISSTORE_SAVE_BUDGET.*: 2 conflicting writes"),
    ):
        _save_against_rivals(session_key, 64)
    final = SessionStore(session_key).load()
    assert "mine" not in final and final["rival1"] == 1 and "rival2" not in final
    assert any("gave up saving" in r.getMessage() for r in caplog.records)


def test_a_save_gives_up_past_its_deadline_and_writes_nothing(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDISSTORE_SAVE_DEADLINE = 1e-6  # over by the first conflict's reply
    session_key = saved_key(a=1)
    with (
        caplog.at_level(logging.WARNING, logger="django_redisstore"),
        pytest.raises(SaveConflict, match=r"REDISSTORE_SAVE_DEADLINE.*: 1 conflicting write"),
    ):
        _save_against_rivals(session_key, 64)
    assert SessionStore(session_key).load() == {"a": 1, "rival0": 0}
    assert any("gave up saving" in r.getMessage() for r in caplog.records)


_json_values = st.one_of(
    st.integers(-3, 3), st.text(max_size=3), st.none(), st.lists(st.integers(0, 2), max_size=2)
)
_session_dicts = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _json_values, max_size=4)


@settings(deadline=None, max_examples=60)
@given(base=_session_dicts, ours=_session_dicts, theirs=_session_dicts)
def test_two_real_saves_from_one_read_give_the_three_way_merge(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    # The same property as above, end to end: two stores read ``base``, one saves ``theirs``,
    # then the other saves ``ours`` and must merge with it through Redis.
    session_key = saved_key(**base)
    late, early = _loaded(session_key), _loaded(session_key)
    for store, data in ((early, theirs), (late, ours)):
        for key in list(store.keys()):
            if key not in data:
                del store[key]
        store.update(data)
    early.save()
    late.save()
    assert SessionStore(session_key).load() == merge.merge(base, ours, theirs)
