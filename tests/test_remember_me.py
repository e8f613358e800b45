"""RememberMeMixin, RememberMeLoginView and the form, through the real middleware stack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from django_redisstore import keys

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.remember_urls")]

LOGIN_TEMPLATE = "{{ form.as_p }}"


@pytest.fixture(autouse=True)
def templates(settings: Any) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    ("django.template.loaders.locmem.Loader", {
                        "registration/login.html": LOGIN_TEMPLATE,
                    })
                ]
            },
        }
    ]  # fmt: skip


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-pw")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="bob-pw")


def ttl_of(redis_client: redis.Redis, cookie_value: str) -> float:
    """Seconds left on the Redis key of the session whose cookie is ``cookie_value``."""
    pttl = redis_client.pttl(keys.session_name(keys.session_id(cookie_value)))
    assert pttl > 0, "the session has no TTL or does not exist"
    return int(pttl) / 1000


def sign_in(client: Client, url: str = "/login/", **data: str) -> Any:
    return client.post(url, {"username": "alice", "password": "alice-pw", **data})


def test_unchecked_box_gives_a_browser_session_cookie_and_djangos_ttl(
    client: Client, alice: User, redis_client: redis.Redis, settings: Any
) -> None:
    response = sign_in(client)
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""
    assert abs(ttl_of(redis_client, cookie.value) - settings.SESSION_COOKIE_AGE) <= 2


def test_checked_box_gives_a_persistent_cookie_aligned_with_the_ttl(
    client: Client, alice: User, redis_client: redis.Redis, settings: Any
) -> None:
    settings.REDISSTORE_REMEMBER_ME_AGE = 5 * 86400
    response = sign_in(client, remember_me="on")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == 5 * 86400
    assert abs(ttl_of(redis_client, cookie.value) - 5 * 86400) <= 2


def test_remember_me_age_defaults_to_thirty_days(
    client: Client, alice: User, settings: Any
) -> None:
    response = sign_in(client, remember_me="on")
    assert int(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"]) == 30 * 86400


def test_remember_me_age_accepts_a_timedelta(client: Client, alice: User, settings: Any) -> None:
    settings.REDISSTORE_REMEMBER_ME_AGE = timedelta(hours=6)
    response = sign_in(client, remember_me="on")
    assert int(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"]) == 6 * 3600


def test_expiry_belongs_to_the_key_that_login_cycled_to(
    client: Client, alice: User, redis_client: redis.Redis, settings: Any
) -> None:
    client.get("/write/?cart=3")  # an anonymous session exists before the sign-in
    before = client.cookies[settings.SESSION_COOKIE_NAME].value
    response = sign_in(client, remember_me="on")
    after = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not redis_client.exists(keys.session_name(keys.session_id(before)))
    assert client.get("/read/").json()["_session_expiry"] == 30 * 86400
    assert client.get("/read/").json()["cart"] == "3"  # login() kept the data


def test_switching_user_without_the_box_forgets_the_previous_remember_me(
    client: Client, alice: User, bob: User, settings: Any
) -> None:
    sign_in(client, remember_me="on")
    response = client.post("/login/", {"username": "bob", "password": "bob-pw"})
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == ""  # login() flushed alice's session; bob's is not remembered
    assert client.get("/read/").json()["_session_expiry"] == 0


def test_next_is_followed_as_login_view_does(client: Client, alice: User) -> None:
    response = sign_in(client, remember_me="on", next="/read/")
    assert response["Location"] == "/read/"


def test_redirect_authenticated_user_is_untouched(client: Client, alice: User) -> None:
    sign_in(client)
    response = client.get("/login-redirect/")
    assert response.status_code == 302


def test_wrong_password_renders_the_form_and_signs_nobody_in(
    client: Client, alice: User, settings: Any
) -> None:
    response = client.post(
        "/login/", {"username": "alice", "password": "nope", "remember_me": "on"}
    )
    assert response.status_code == 200
    assert 'name="remember_me"' in response.content.decode()
    assert settings.SESSION_COOKIE_NAME not in response.cookies


def test_a_projects_own_form_and_field_name_work(
    client: Client, alice: User, redis_client: redis.Redis, settings: Any
) -> None:
    response = sign_in(client, "/login-own-form/", keep_me="on")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == 3600
    assert abs(ttl_of(redis_client, cookie.value) - 3600) <= 2


def test_a_form_without_the_field_is_a_clear_configuration_error(
    client: Client, alice: User
) -> None:
    with pytest.raises(ImproperlyConfigured, match="has no 'remember_me' field"):
        sign_in(client, "/login-plain-form/")


def test_bad_remember_me_age_is_reported_by_checks(settings: Any) -> None:
    from django_redisstore.checks import check_timeouts

    settings.REDISSTORE_REMEMBER_ME_AGE = "30 days"
    assert [m.id for m in check_timeouts()] == ["django_redisstore.E020"]
    settings.REDISSTORE_REMEMBER_ME_AGE = 90 * 86400
    settings.REDISSTORE_ABSOLUTE_TIMEOUT = 30 * 86400
    assert [m.id for m in check_timeouts()] == ["django_redisstore.W020"]
