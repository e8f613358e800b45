"""The sessions pages of ``django_redisstore.urls``, through Django's test client and the real
middleware stack (tests/test_browser.py drives them in a browser)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils.timezone import localtime

import django_redisstore
from django_redisstore import keys
from django_redisstore.index import SessionInfo
from django_redisstore.views import ListedSession, SessionListView

from .site_templates import templates

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.pages_urls")]

SITE_BASE = (
    "<title>{% block title %}{% endblock %} · Example site</title>"
    '<div id="site-frame">{% block content %}{% endblock %}</div>'
)


@pytest.fixture(autouse=True)
def site(settings: Any) -> None:
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django.contrib.messages"]
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_redisstore.middleware.DeviceMiddleware",
    ]
    settings.TEMPLATES = templates(extra={"site_base.html": SITE_BASE})


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="pw")


def signed_in(user: User, user_agent: str = "curl/8.5.0") -> Client:
    client = Client(HTTP_USER_AGENT=user_agent)
    client.force_login(user)
    client.get(reverse("redisstore:sessions"))  # the device record
    return client


def hashed_id(client: Client) -> str:
    return keys.session_id(client.cookies[settings.SESSION_COOKIE_NAME].value)


def is_signed_in(client: Client) -> bool:
    return bool(client.get(reverse("redisstore:sessions")).status_code == 200)


def end_url(client: Client) -> str:
    return reverse("redisstore:end-session", args=[hashed_id(client)])


def test_the_urls_are_under_the_redisstore_namespace() -> None:
    assert reverse("redisstore:sessions") == "/accounts/sessions/"
    assert reverse("redisstore:end-others") == "/accounts/sessions/end-others/"
    assert reverse("redisstore:end-session", args=["abc"]) == "/accounts/sessions/abc/end/"


def test_signed_out_visitors_are_sent_to_sign_in(client: Client) -> None:
    for url in ("/accounts/sessions/", "/accounts/sessions/end-others/"):
        response = client.get(url) if url.endswith("sessions/") else client.post(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_the_list_shows_each_session_with_device_ip_last_seen_expiry_and_marks_this_one(
    alice: User, bob: User
) -> None:
    phone = signed_in(alice, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1")
    desk = signed_in(alice, "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    signed_in(bob)

    response = desk.get("/accounts/sessions/")

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<tr class="session') == 2
    assert f'<tr class="session current" data-id="{hashed_id(desk)}">' in page
    assert f'<tr class="session" data-id="{hashed_id(phone)}">' in page
    assert "Firefox on Linux" in page and "Safari on iOS" in page
    assert "127.0.0.1" in page and "this session" in page
    infos = {info.id: info for info in django_redisstore.user_sessions(alice)}
    assert localtime(infos[hashed_id(phone)].expires_at).strftime("%Y-%m-%d %H:%M") in page
    assert "just now</time>" in page
    rows = response.context["sessions"]
    assert [row.current for row in rows] == [True, False]  # this one first
    # Only the other session has a button; the current one is ended by signing out.
    assert page.count("/end/") == 1 and end_url(phone) in page
    assert "Sign out other sessions" in page


def test_the_pages_extend_the_bundled_base_by_default_and_the_sites_when_set(
    alice: User, settings: Any
) -> None:
    client = signed_in(alice)
    page = client.get("/accounts/sessions/").content.decode()
    assert "<title>Your sessions</title>" in page and "site-frame" not in page

    settings.REDISSTORE_BASE_TEMPLATE = "site_base.html"
    page = client.get("/accounts/sessions/").content.decode()
    assert "<title>Your sessions · Example site</title>" in page
    assert '<div id="site-frame">' in page and "Your sessions</h1>" in page


def test_end_others_keeps_this_session_and_other_users(
    alice: User, bob: User, ended: list[Any]
) -> None:
    first, second, third, theirs = (
        signed_in(alice),
        signed_in(alice),
        signed_in(alice),
        signed_in(bob),
    )
    doomed = sorted((str(alice.pk), hashed_id(c), "user") for c in (second, third))

    response = first.post("/accounts/sessions/end-others/", follow=True)

    assert response.redirect_chain == [("/accounts/sessions/", 302)]
    assert "Signed out 2 other sessions." in response.content.decode()
    assert is_signed_in(first) and is_signed_in(theirs)
    assert not is_signed_in(second) and not is_signed_in(third)
    assert sorted(ended) == doomed


def test_ending_one_of_the_users_sessions(alice: User, ended: list[Any]) -> None:
    first, second, third = signed_in(alice), signed_in(alice), signed_in(alice)
    doomed = hashed_id(second)

    response = first.post(end_url(second), follow=True)

    assert response.redirect_chain == [("/accounts/sessions/", 302)]
    assert "Signed out that session." in response.content.decode()
    assert not is_signed_in(second)
    assert is_signed_in(first) and is_signed_in(third)
    assert ended == [(str(alice.pk), doomed, "user")]


def test_another_users_session_or_an_unknown_id_is_a_404(
    alice: User, bob: User, ended: list[Any]
) -> None:
    mine, theirs = signed_in(alice), signed_in(bob)

    assert mine.post(end_url(theirs)).status_code == 404
    assert mine.post("/accounts/sessions/AAAAAAAAAAAAAAAAAAAAAA/end/").status_code == 404
    assert is_signed_in(theirs) and ended == []


def test_the_current_session_is_refused_with_a_message(alice: User, ended: list[Any]) -> None:
    client = signed_in(alice)

    response = client.post(end_url(client))

    assert response.status_code == 400
    page = response.content.decode()
    assert "This is the session you are using: sign out to end it." in page
    assert f'data-id="{hashed_id(client)}"' in page  # the list, shown again
    assert is_signed_in(client) and ended == []


def test_the_actions_take_posts_only(alice: User) -> None:
    client = signed_in(alice)
    other = signed_in(alice)
    assert client.get("/accounts/sessions/end-others/").status_code == 405
    assert client.get(end_url(other)).status_code == 405
    assert is_signed_in(other)


def test_csrf_is_enforced_on_the_actions(alice: User) -> None:
    client, other = signed_in(alice), signed_in(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.post("/accounts/sessions/end-others/").status_code == 403
    assert client.post(end_url(other)).status_code == 403
    assert is_signed_in(other)

    client.get("/accounts/sessions/")  # the page sets the CSRF cookie its forms need
    token = client.cookies["csrftoken"].value
    response = client.post(end_url(other), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert not is_signed_in(other)


def test_csrf_is_enforced_even_without_the_csrf_middleware(alice: User, settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "csrf" not in m]
    other = signed_in(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.post("/accounts/sessions/end-others/").status_code == 403
    assert is_signed_in(other)


def test_without_the_messages_framework_the_actions_still_work(alice: User, settings: Any) -> None:
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if "messages" not in a]
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "messages" not in m]
    settings.TEMPLATES = templates(messages=False, extra={"site_base.html": SITE_BASE})
    first, second = signed_in(alice), signed_in(alice)

    response = first.post("/accounts/sessions/end-others/", follow=True)

    assert response.status_code == 200 and not is_signed_in(second)


class OnlyOtherSessions(SessionListView):
    """A site's subclass: its own list, its own template name."""

    def get_sessions(self) -> Any:
        return [row for row in super().get_sessions() if not row.current]


def test_a_site_can_subclass_the_list_view(alice: User, rf: Any) -> None:
    first, second = signed_in(alice), signed_in(alice)
    request = rf.get("/accounts/sessions/")
    request.user = alice
    request.session = first.session

    response = OnlyOtherSessions.as_view()(request)

    assert [row.id for row in response.context_data["sessions"]] == [hashed_id(second)]


def test_a_row_says_when_the_session_was_last_seen_in_words() -> None:
    now = datetime.now(timezone.utc)
    info = SessionInfo(
        id="x", user_id="1", created=now, saved=now - timedelta(hours=2, seconds=5), size=1,
        expires_at=now, ttl=1,
    )  # fmt: skip
    row = ListedSession(info, current=False)
    assert (row.label, row.ip, row.last_seen) == ("Unknown device", "", info.saved)
    assert row.seen == "2\xa0hours ago"
    assert ListedSession(replace(info, saved=now), current=False).seen == "just now"
