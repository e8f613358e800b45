"""``manage.py sessions inspect``: the summary, one session, one user's sessions."""

from __future__ import annotations

import io

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management import CommandError
from django.test import override_settings

from django_redisstore import codec, keys

from .command_helpers import (
    Terminal,
    make_session,
    name_of,
    sessions,
    sessions_json,
    set_header_time,
    timeouts,  # noqa: F401 (an autouse fixture: both timeouts)
)


def test_summary_counts_signed_in_and_anonymous_sessions_and_users() -> None:
    for user in (1, 1, 1, 2, 3):
        make_session(user)
    make_session()
    make_session(cart=[1, 2])

    summary = sessions_json("inspect")

    assert summary["total"] == 7
    assert summary["authenticated"] == 5
    assert summary["anonymous"] == 2
    assert summary["users"] == 3
    assert summary["top_users"][0] == {"user": "1", "username": None, "sessions": 3}
    assert sum(b["sessions"] for b in summary["ttl_histogram"]) == 7
    assert sum(b["sessions"] for b in summary["age_histogram"]) == 7
    assert summary["memory_samples"] >= 1 and summary["memory_bytes"] > 0
    assert summary["oldest"] <= summary["newest"]


def test_summary_of_no_sessions_is_zeros() -> None:
    summary = sessions_json("inspect")

    assert {k: summary[k] for k in ("total", "authenticated", "anonymous", "users")} == {
        "total": 0,
        "authenticated": 0,
        "anonymous": 0,
        "users": 0,
    }
    assert summary["oldest"] is None


def test_summary_ignores_other_prefixes_and_foreign_keys(
    redis_client: redis.Redis, redisstore: str
) -> None:
    make_session(1)
    redis_client.set(f"{redisstore}x:s:notours", b"x" * 40, ex=60)
    redis_client.set(f"{redisstore}:s:garbage", b"not a record", ex=60)
    redis_client.set("unrelated", b"1", ex=60)

    assert sessions_json("inspect")["total"] == 1


def test_summary_histograms_place_sessions_by_ttl_and_age(redis_client: redis.Redis) -> None:
    short = make_session()
    redis_client.pexpire(name_of(short), 600_000)  # 10 minutes left
    old = make_session()
    set_header_time(redis_client, name_of(old), 2, 3 * 86400)  # created 3 days ago

    summary = sessions_json("inspect")

    ttl = {b["range"]: b["sessions"] for b in summary["ttl_histogram"]}
    age = {b["range"]: b["sessions"] for b in summary["age_histogram"]}
    assert ttl["< 1h"] == 1 and ttl["7d - 14d"] == 1
    assert age["< 1h"] == 1 and age["1d - 7d"] == 1


def test_summary_text_draws_histograms() -> None:
    make_session(1)
    make_session()

    text = sessions("inspect")

    assert "total                      2" in text
    assert "Time to live" in text and "Age" in text
    assert "Top users by sessions" in text


def test_progress_bar_only_on_a_terminal() -> None:
    make_session()
    quiet, tty = io.StringIO(), Terminal()

    sessions("inspect", stderr=quiet)
    sessions("inspect", stderr=tty)

    assert quiet.getvalue() == ""
    assert "Scanning [" in tty.getvalue() and "100%" in tty.getvalue()


def test_inspect_key_shows_the_session_with_secrets_redacted() -> None:
    session = make_session(5, theme="dark", token="abc")
    assert session.session_key is not None

    with override_settings(REDISSTORE_REDACT_KEYS=["token"]):
        shown = sessions_json("inspect", session.session_key)
        revealed = sessions_json("inspect", session.session_key, "--show-secrets")

    assert shown["user"] == "5"
    assert shown["id"] == keys.session_id(session.session_key)
    assert shown["data"]["theme"] == "dark"
    assert shown["data"]["_auth_user_hash"] == "<redacted>"
    assert shown["data"]["token"] == "<redacted>"
    assert revealed["data"]["_auth_user_hash"] == "secret-hash-of-the-password"
    assert revealed["data"]["token"] == "abc"
    assert 0 < shown["ttl"] <= 1209600
    assert shown["size"] > codec.HEADER_SIZE
    assert set(shown) == {"id", "user", "created", "saved", "expires_at", "ttl", "size", "data"}


def test_inspect_key_text_never_prints_the_hash() -> None:
    session = make_session(5)
    assert session.session_key is not None

    text = sessions("inspect", session.session_key)

    assert "secret-hash-of-the-password" not in text
    assert "<redacted>" in text


def test_inspect_malformed_key_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="not a session key"):
        sessions("inspect", "NOT/A-KEY")


def test_inspect_unknown_key_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="No session has this key"):
        sessions("inspect", "a" * 32)


@pytest.mark.django_db
def test_inspect_user_by_username_or_pk_lists_their_sessions() -> None:
    user = get_user_model().objects.create_user("grace", password="pw")
    first, second = make_session(user.pk), make_session(user.pk)
    make_session(user.pk + 1)

    by_name = sessions_json("inspect", "--user", "grace")
    by_pk = sessions_json("inspect", "--user", str(user.pk))

    assert by_name["user"] == str(user.pk)
    ids = {s["id"] for s in by_name["sessions"]}
    assert ids == {name_of(first).rsplit(":", 1)[1], name_of(second).rsplit(":", 1)[1]}
    assert by_pk["user"] == by_name["user"]
    assert {s["id"] for s in by_pk["sessions"]} == ids
    assert f"User {user.pk} (grace): 2 sessions" in sessions("inspect", "--user", "grace")


@pytest.mark.django_db
def test_summary_names_top_users_from_the_database() -> None:
    user = get_user_model().objects.create_user("hedy", password="pw")
    make_session(user.pk)

    assert sessions_json("inspect")["top_users"] == [
        {"user": str(user.pk), "username": "hedy", "sessions": 1}
    ]
    assert f"{user.pk} (hedy)" in sessions("inspect")


@pytest.mark.django_db
def test_inspect_unknown_user_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="No user has the username or primary key 'nobody'"):
        sessions("inspect", "--user", "nobody")


def test_summary_skips_and_counts_keys_that_are_not_sessions(
    redis_client: redis.Redis, redisstore: str
) -> None:
    make_session(1)
    make_session()
    redis_client.rpush(f"{redisstore}:s:alist", b"a")
    redis_client.set(f"{redisstore}:s:short", b"not a record")
    redis_client.set(f"{redisstore}:u:9", b"a string where an index goes")

    summary = sessions_json("inspect")
    text = sessions("inspect")

    assert (summary["total"], summary["users"], summary["skipped"]) == (2, 1, 3)
    assert "Skipped 3 keys that are not sessions (left as they are)." in text
    assert redis_client.type(f"{redisstore}:s:alist") == b"list"


SECRETS = {
    "_csrftoken": "csrf-value",
    "api_token": "api-value",
    "oauth_refresh_token": "refresh-value",
    "password_reset_key": "reset-value",
    "apiKey": "camel-value",
    "sessionId": "other-site-session",
    "login_otp": "123456",
    "oauth": {"access_token": "nested-value", "provider": "github"},
}
VISIBLE = {"theme": "dark", "monkey": "business", "keyboard_layout": "dvorak", "cart": [1, 2]}


def test_inspect_key_redacts_every_key_that_looks_secret_in_text_and_json() -> None:
    key = make_session(5, **SECRETS, **VISIBLE).session_key
    assert key is not None

    shown = sessions_json("inspect", key)["data"]
    text = sessions("inspect", key)

    for name in SECRETS.keys() - {"oauth"}:
        assert shown[name] == "<redacted>", name
    assert shown["oauth"] == {"access_token": "<redacted>", "provider": "github"}
    assert shown["_auth_user_hash"] == "<redacted>"
    assert {name: shown[name] for name in VISIBLE} == VISIBLE
    assert shown["_auth_user_id"] == "5"  # Django's user id and backend are not secrets
    for value in (
        "csrf-value",
        "api-value",
        "refresh-value",
        "reset-value",
        "camel-value",
        "other-site-session",
        "123456",
        "nested-value",
        "secret-hash-of-the-password",
    ):
        assert value not in text  # fmt: skip
    assert "dvorak" in text and "business" in text


def test_redact_keys_adds_names_and_patterns_and_show_secrets_shows_all() -> None:
    key = make_session(5, acme_internal="a", ACME_PLAN="b", badge="c", **SECRETS).session_key
    assert key is not None

    with override_settings(REDISSTORE_REDACT_KEYS=["acme_*", "badge"]):
        shown = sessions_json("inspect", key)["data"]
        revealed = sessions_json("inspect", key, "--show-secrets")["data"]

    assert shown["acme_internal"] == shown["ACME_PLAN"] == shown["badge"] == "<redacted>"
    assert revealed["acme_internal"] == "a" and revealed["badge"] == "c"
    assert {name: revealed[name] for name in SECRETS} == SECRETS
    assert revealed["_auth_user_hash"] == "secret-hash-of-the-password"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("_auth_user_hash", True),
        ("client_secret", True),
        ("MFA_SEED", True),
        ("user_pwd", True),
        ("signing_keys", True),
        ("privateNote", True),
        ("_auth_user_id", False),
        ("_auth_user_backend", False),
        ("_session_expiry", False),
        ("turkey", False),
        ("hashtag", False),
        ("pinned", False),
    ],
)
def test_which_names_look_secret(name: str, secret: bool) -> None:
    from django_redisstore.redact import is_secret

    assert is_secret(name) is secret
