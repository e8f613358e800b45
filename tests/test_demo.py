"""The demo's "Your sessions" actions, through Django's test client (tests/test_browser.py
drives the same pages in a browser)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_redisstore import keys

from .site_templates import templates

pytestmark = [pytest.mark.django_db, pytest.mark.urls("testproject.account_urls")]


@pytest.fixture(autouse=True)
def demo_settings(settings: Any) -> None:
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django.contrib.messages", "testproject"]
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_redisstore.middleware.DeviceMiddleware",
    ]
    settings.REDISSTORE_BASE_TEMPLATE = "testproject/base.html"
    settings.TEMPLATES = templates()


@pytest.fixture(autouse=True)
def users(db: Any) -> None:
    User.objects.create_user("alice", password="pw")
    User.objects.create_user("bob", password="pw")


def signed_in(username: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": "pw"})
    assert response.status_code == 302
    return client


def hashed_id(client: Client, settings: Any) -> str:
    return keys.session_id(client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_signed_out_visitors_are_sent_to_sign_in_with_next(client: Client) -> None:
    response = client.get("/accounts/sessions/")
    assert response["Location"] == "/accounts/login/?next=/accounts/sessions/"


def test_the_list_shows_the_users_sessions_with_this_one_marked(settings: Any) -> None:
    first, second = signed_in("alice"), signed_in("alice")
    signed_in("bob")
    page = first.get("/accounts/sessions/", HTTP_USER_AGENT="curl/8.5.0").content.decode()
    assert page.count('class="session') == 2
    assert f'class="session current" data-id="{hashed_id(first, settings)}"' in page
    assert f'data-id="{hashed_id(second, settings)}"' in page
    assert "Sign out other sessions" in page and "Your sessions" in page


def test_sign_out_other_sessions_keeps_this_one_and_other_users() -> None:
    first, second, bob = signed_in("alice"), signed_in("alice"), signed_in("bob")
    response = first.post("/accounts/sessions/end-others/")
    assert response.status_code == 302
    assert first.get("/accounts/sessions/").status_code == 200
    assert second.get("/accounts/sessions/").status_code == 302
    assert bob.get("/accounts/sessions/").status_code == 200


def test_a_session_of_another_user_cannot_be_signed_out(settings: Any) -> None:
    alice, bob = signed_in("alice"), signed_in("bob")
    response = alice.post(f"/accounts/sessions/{hashed_id(bob, settings)}/end/")
    assert response.status_code == 404
    assert bob.get("/accounts/sessions/").status_code == 200


def test_the_actions_take_posts_only(settings: Any) -> None:
    alice = signed_in("alice")
    assert alice.get("/accounts/sessions/end-others/").status_code == 405


def test_the_session_page_redacts_secrets(settings: Any) -> None:
    alice = signed_in("alice")
    page = alice.get("/").content.decode()
    assert "_auth_user_hash" in page and "(redacted)" in page
    user = User.objects.get(username="alice")
    assert user.get_session_auth_hash() not in page
