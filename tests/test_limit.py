"""At most N sessions per user (``REDISSTORE_MAX_SESSIONS_PER_USER``): both policies, through
``login()``, the views and the engine's own saves; under parallel sign-ins on a single server and
on a Redis Cluster; and what it costs in round trips."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth import SESSION_KEY, login
from django.contrib.auth.models import AnonymousUser, User, update_last_login
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import LoginView
from django.http import HttpRequest
from django.test import Client
from django.urls import path

from django_redisstore import index, keys, scripts, user_sessions
from django_redisstore.clients import get_client
from django_redisstore.exceptions import TooManySessions
from django_redisstore.flows import run_all
from django_redisstore.session import SessionStore
from django_redisstore.views import RememberMeLoginView

from .django_versions import needs_async_api
from .redis_servers import RoundTrips
from .test_round_trips import warm_up
from .threads import run_threads

urlpatterns = [
    path("login/", RememberMeLoginView.as_view()),
    path("plain-login/", LoginView.as_view()),
]

#: (user_id, session_id, reason) of each session_ended received (the ``ended`` fixture).
Events = list[tuple[str | None, str, str]]


@pytest.fixture(autouse=True)
def no_last_login_update() -> Iterator[None]:
    """Django's ``update_last_login`` writes to the database on each sign-in: the users here are
    not saved (no database needed, and threads can sign in)."""
    user_logged_in.disconnect(dispatch_uid="update_last_login")
    yield
    user_logged_in.connect(update_last_login, dispatch_uid="update_last_login")


def user(pk: int = 7) -> User:
    return User(pk=pk, username=f"user{pk}", password="unusable")


def sign_in(someone: User, **data: Any) -> SessionStore:
    """What a sign-in view and ``SessionMiddleware`` do: ``login()``, then the save."""
    request = HttpRequest()
    request.session = SessionStore()
    request.session.update(data)
    login(request, someone, backend="django.contrib.auth.backends.ModelBackend")
    if request.session.modified:
        request.session.save()
    return request.session


def sid_of(session: SessionStore) -> str:
    assert session.session_key is not None
    return keys.session_id(session.session_key)


def alive(session: SessionStore) -> bool:
    return SessionStore().exists(session.session_key)


def indexed(user_id: str = "7") -> set[str]:
    return {m.decode() for m in get_client().zrange(keys.user_index_name(user_id), 0, -1)}


@pytest.fixture
def limit_of_two(settings: Any) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 2


# end_oldest ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("limit_of_two")
def test_end_oldest_ends_the_session_the_index_expects_to_end_first(
    ended: Events, settings: Any
) -> None:
    settings.SESSION_COOKIE_AGE = 3600
    short = sign_in(user())
    settings.SESSION_COOKIE_AGE = 86400
    first, newest = sign_in(user()), sign_in(user())

    assert not alive(short) and alive(first) and alive(newest)
    assert indexed() == {sid_of(first), sid_of(newest)}
    assert ended == [("7", sid_of(short), "limit")]


@pytest.mark.usefixtures("limit_of_two")
def test_among_sessions_of_one_lifetime_the_least_recently_used_goes(
    ended: Events, redis_client: redis.Redis
) -> None:
    first, second = sign_in(user()), sign_in(user())
    # As if the second had not been used for a day longer than the first.
    score = redis_client.zscore(keys.user_index_name("7"), sid_of(first))
    assert score is not None
    redis_client.zadd(keys.user_index_name("7"), {sid_of(second): score - 86400})

    third = sign_in(user())

    assert alive(first) and not alive(second) and alive(third)
    assert ended == [("7", sid_of(second), "limit")]


def test_the_new_session_is_never_the_one_ended(ended: Events, settings: Any) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 1
    remembered = sign_in(user(), _session_expiry=30 * 86400)
    short = sign_in(user(), _session_expiry=600)  # expected to end long before the other

    assert alive(short) and not alive(remembered)
    assert ended == [("7", sid_of(remembered), "limit")]


@pytest.mark.usefixtures("limit_of_two")
def test_other_users_and_anonymous_sessions_do_not_count(ended: Events) -> None:
    mine = [sign_in(user()), sign_in(user())]
    theirs = [sign_in(user(8)), sign_in(user(8))]
    anonymous = [SessionStore() for _ in range(3)]
    for session in anonymous:
        session["cart"] = 1
        session.save()

    assert all(alive(s) for s in [*mine, *theirs, *anonymous])
    assert ended == []


@pytest.mark.usefixtures("limit_of_two")
def test_sessions_already_signed_in_are_never_counted_again(ended: Events, settings: Any) -> None:
    first, second = sign_in(user()), sign_in(user())
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 1  # lowered: takes effect at the next sign-in

    for session in (first, second):
        loaded = SessionStore(session.session_key)
        loaded["seen"] = True
        loaded.save()
        loaded.cycle_key()
    assert ended == [] and len(indexed()) == 2

    third = sign_in(user())
    assert indexed() == {sid_of(third)}
    assert len(ended) == 2 and {reason for _, _, reason in ended} == {"limit"}


@pytest.mark.usefixtures("limit_of_two")
def test_signing_in_again_in_the_same_session_takes_no_extra_place(ended: Events) -> None:
    other, session = sign_in(user()), sign_in(user())
    request = HttpRequest()
    request.session = SessionStore(session.session_key)
    login(request, user(), backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()

    assert alive(other) and alive(request.session)
    assert indexed() == {sid_of(other), sid_of(request.session)}
    assert ended == []


# refuse ----------------------------------------------------------------------------------------


@pytest.fixture
def refuse(settings: Any, limit_of_two: None) -> None:
    settings.REDISSTORE_MAX_SESSIONS_POLICY = "refuse"


@pytest.mark.usefixtures("refuse")
def test_refuse_makes_login_raise_and_leaves_nothing_of_the_sign_in(
    ended: Events, redis_client: redis.Redis, redisstore: str
) -> None:
    first, second = sign_in(user()), sign_in(user())
    request = HttpRequest()
    request.session = SessionStore()
    request.session["cart"] = ["book"]
    request.user = AnonymousUser()

    with pytest.raises(TooManySessions, match="MAX_SESSIONS_PER_USER"):
        login(request, user(), backend="django.contrib.auth.backends.ModelBackend")

    assert request.user.is_anonymous
    assert request.session.session_key is None
    assert dict(request.session.items()) == {"cart": ["book"]}
    assert sorted(redis_client.scan_iter(f"{redisstore}:s:*")) == sorted(
        keys.session_name(sid_of(s)).encode() for s in (first, second)
    )
    assert indexed() == {sid_of(first), sid_of(second)}
    assert ended == []
    # What SessionMiddleware does next: the anonymous data, under a new key, in no index.
    request.session.save()
    assert SessionStore(request.session.session_key).load() == {"cart": ["book"]}
    assert indexed() == {sid_of(first), sid_of(second)}


@pytest.mark.usefixtures("refuse")
def test_refuse_lets_the_sign_in_through_once_a_place_is_free(ended: Events) -> None:
    first, second = sign_in(user()), sign_in(user())
    with pytest.raises(TooManySessions):
        sign_in(user())
    gone = sid_of(first)
    first.flush()  # sign out on one device

    third = sign_in(user())

    assert alive(second) and alive(third)
    assert ended == [("7", gone, "logout")]


@pytest.mark.usefixtures("refuse")
def test_refuse_does_not_count_index_entries_of_sessions_that_are_gone(
    redis_client: redis.Redis,
) -> None:
    first, second = sign_in(user()), sign_in(user())
    redis_client.delete(keys.session_name(sid_of(first)))  # evicted: its entry stays

    third = sign_in(user())

    assert alive(second) and alive(third)
    assert indexed() == {sid_of(second), sid_of(third)}


@pytest.mark.usefixtures("refuse")
def test_a_save_that_files_a_session_under_its_user_is_refused_too() -> None:
    sign_in(user()), sign_in(user())
    session = SessionStore()
    session["a"] = 1
    session.save()
    session[SESSION_KEY] = "7"

    with pytest.raises(TooManySessions):
        session.save()

    assert not alive(session) and len(indexed()) == 2


@pytest.mark.needs_django((5, 0), "django.contrib.auth.alogin()")
@pytest.mark.usefixtures("refuse")
async def test_refuse_makes_alogin_raise_too() -> None:
    from django.contrib.auth import alogin  # new in Django 5.0

    for _ in range(2):
        request = HttpRequest()
        request.session = SessionStore()
        await alogin(request, user(), backend="django.contrib.auth.backends.ModelBackend")
    request = HttpRequest()
    request.session = SessionStore()

    with pytest.raises(TooManySessions):
        await alogin(request, user(), backend="django.contrib.auth.backends.ModelBackend")

    assert request.session.session_key is None


@needs_async_api
async def test_end_oldest_on_the_async_api_sends_the_limit_event(
    ended: Events, settings: Any
) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 1
    first = SessionStore()
    await first.aset(SESSION_KEY, "7")
    await first.asave()
    second = SessionStore()
    await second.aset(SESSION_KEY, "7")
    await second.asave()

    assert not await SessionStore().aexists(first.session_key)
    assert ended == [("7", sid_of(first), "limit")]


@needs_async_api
@pytest.mark.usefixtures("refuse")
async def test_refuse_on_the_async_api_raises_and_deletes_the_refused_record() -> None:
    for _ in range(2):
        session = SessionStore()
        await session.aset(SESSION_KEY, "7")
        await session.asave()
    refused = SessionStore()
    await refused.aset("a", 1)
    await refused.asave()
    key = refused.session_key
    await refused.aset(SESSION_KEY, "7")

    with pytest.raises(TooManySessions):
        await refused.asave()

    assert not await SessionStore().aexists(key)
    assert refused.session_key is None and await refused.aget("a") == 1


@pytest.mark.usefixtures("refuse")
def test_an_import_files_sessions_without_counting_them() -> None:
    imported = [keys.new_session_key() for _ in range(3)]

    written = run_all(
        [SessionStore(key)._import_flow({SESSION_KEY: "7"}, None) for key in imported]
    )

    assert written == [True, True, True]
    assert indexed() == {keys.session_id(key) for key in imported}


# The views -------------------------------------------------------------------------------------


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-pw")


@pytest.fixture
def login_template(settings: Any) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    ("django.template.loaders.locmem.Loader", {
                        "registration/login.html": "{{ form.non_field_errors }}{{ form.as_p }}",
                    })
                ]
            },
        }
    ]  # fmt: skip


def post_sign_in(client: Client, url: str = "/login/", **data: str) -> Any:
    return client.post(url, {"username": "alice", "password": "alice-pw", **data})


@pytest.mark.urls(__name__)
@pytest.mark.usefixtures("refuse", "login_template")
def test_remember_me_view_shows_a_form_error_when_refused(alice: User, settings: Any) -> None:
    for _ in range(2):
        assert post_sign_in(Client(), remember_me="on").status_code == 302
    browser = Client()

    response = post_sign_in(browser, remember_me="on")

    assert response.status_code == 200
    assert response.context["form"].has_error("__all__", code="too_many_sessions")
    assert "too many devices" in response.content.decode()
    assert settings.SESSION_COOKIE_NAME not in response.cookies  # no session was kept
    assert len(indexed(str(alice.pk))) == 2


@pytest.mark.urls(__name__)
@pytest.mark.usefixtures("limit_of_two", "login_template")
def test_remember_me_view_with_end_oldest_keeps_the_expiry_and_the_limit(
    alice: User, settings: Any, redis_client: redis.Redis
) -> None:
    settings.REDISSTORE_REMEMBER_ME_AGE = 5 * 86400
    browsers = [Client() for _ in range(3)]
    for browser in browsers:
        assert post_sign_in(browser, remember_me="on").status_code == 302

    assert len(indexed(str(alice.pk))) == 2
    *older, cookie = (b.cookies[settings.SESSION_COOKIE_NAME].value for b in browsers)
    # Signed in within the same second, with the same lifetime: either older one may go.
    assert sorted(bool(SessionStore(key).load()) for key in older) == [False, True]
    assert SessionStore(cookie).load()[SESSION_KEY] == str(alice.pk)
    pttl = redis_client.pttl(keys.session_name(keys.session_id(cookie)))
    assert 5 * 86400 - 5 <= pttl / 1000 <= 5 * 86400


# Round trips -----------------------------------------------------------------------------------


def trips_to_sign_in(round_trips: RoundTrips, url: str) -> int:
    browser = Client()
    warm_up()
    round_trips.count = 0
    assert post_sign_in(browser, url).status_code == 302
    return round_trips.count


@pytest.mark.urls(__name__)
@pytest.mark.usefixtures("login_template")
@pytest.mark.parametrize("url", ["/login/", "/plain-login/"])
def test_a_sign_in_costs_the_same_with_a_limit_hit_or_not_on_one_server(
    alice: User, settings: Any, round_trips: RoundTrips, url: str, ended: Events
) -> None:
    without = trips_to_sign_in(round_trips, url)
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 2
    under = trips_to_sign_in(round_trips, url)
    hit = trips_to_sign_in(round_trips, url)

    assert without == under == hit == 2  # create the new key, then save it signed in
    assert len(ended) == 1


@pytest.mark.urls(__name__)
@pytest.mark.usefixtures("login_template")
def test_a_refused_sign_in_costs_three_more_round_trips(
    alice: User, settings: Any, round_trips: RoundTrips
) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 1
    settings.REDISSTORE_MAX_SESSIONS_POLICY = "refuse"
    assert trips_to_sign_in(round_trips, "/login/") == 2
    browser = Client()
    warm_up()
    round_trips.count = 0
    assert post_sign_in(browser).status_code == 200
    # The user's sessions, read and verified (2), and the refused record deleted (1).
    assert round_trips.count == 2 + 3


# Parallel sign-ins -----------------------------------------------------------------------------


def sign_in_from_threads(count: int) -> tuple[list[SessionStore], int]:
    """``count`` threads sign user 7 in at once: the sessions signed in, and the refusals."""
    barrier = threading.Barrier(count)
    signed_in: list[SessionStore] = []
    refused: list[int] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            signed_in.append(sign_in(user()))
        except TooManySessions:
            refused.append(i)

    run_threads(count, work, barrier)
    return signed_in, len(refused)


def live_sessions_of_seven(client: Any, prefix: str) -> list[str]:
    """Every session key under the prefix whose record belongs to user 7 (not the index's
    word: the records themselves)."""
    found = []
    for name in client.scan_iter(f"{prefix}:s:*"):
        _, data = index.decode(name.decode(), client.get(name))
        if data.get(SESSION_KEY) == "7":
            found.append(name.decode().rsplit(":", 1)[1])
    return found


@pytest.mark.parametrize("policy", ["end_oldest", "refuse"])
@pytest.mark.parametrize("topology", ["single", "cluster"])
def test_eight_parallel_sign_ins_never_leave_more_than_the_limit(
    request: pytest.FixtureRequest,
    settings: Any,
    redisstore: str,
    ended: Events,
    policy: str,
    topology: str,
) -> None:
    if topology == "cluster":
        request.getfixturevalue("on_cluster")
        client = request.getfixturevalue("cluster_client")
    else:
        client = request.getfixturevalue("redis_client")
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 3
    settings.REDISSTORE_MAX_SESSIONS_POLICY = policy
    for script in scripts.ALL:  # loaded by every thread at once would be a race of its own
        get_client().script_load(script.source)

    signed_in, refused = sign_in_from_threads(8)

    live = live_sessions_of_seven(client, redisstore)
    assert len(live) == 3
    assert sorted(live) == sorted(info.id for info in user_sessions(7)) == sorted(indexed())
    if policy == "refuse":
        assert refused == 5 and len(signed_in) == 3 and ended == []
        assert sorted(live) == sorted(sid_of(s) for s in signed_in)
    else:
        assert refused == 0 and len(signed_in) == 8
        assert len(ended) == 5 and {r for _, _, r in ended} == {"limit"}
        assert sorted(live + [sid for _, sid, _ in ended]) == sorted(sid_of(s) for s in signed_in)
