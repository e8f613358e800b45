"""System checks: every misconfiguration gets its id, and a password never reaches the output."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_redisstore import checks

DJANGO_REDIS = "django_redis.cache.RedisCache"
DJANGO_REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


def _ours() -> list[CheckMessage]:
    return [m for m in run_checks() if str(m.id).startswith("django_redisstore.")]


def _ids() -> list[str]:
    return [str(m.id) for m in _ours()]


@pytest.fixture
def no_connection(settings: Any) -> Any:
    settings.REDISSTORE_URL = None
    settings.REDISSTORE_CACHE_ALIAS = None
    return settings


def test_a_good_url_reports_nothing(settings: Any) -> None:
    settings.REDISSTORE_URL = "redis://127.0.0.1:6379/1"
    assert _ours() == []


def test_e001_no_url_and_no_alias(no_connection: Any) -> None:
    assert _ids() == ["django_redisstore.E001"]
    del no_connection.REDISSTORE_URL
    del no_connection.REDISSTORE_CACHE_ALIAS
    assert _ids() == ["django_redisstore.E001"]


def test_e001_an_empty_url_counts_as_none(no_connection: Any) -> None:
    no_connection.REDISSTORE_URL = ""
    assert _ids() == ["django_redisstore.E001"]


def test_e001_fails_manage_py_check(no_connection: Any) -> None:
    with pytest.raises(SystemCheckError, match=r"django_redisstore\.E001"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_e002_alias_missing(no_connection: Any) -> None:
    no_connection.REDISSTORE_CACHE_ALIAS = "sessions"
    no_connection.CACHES = {"default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://h:1/0"}}
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.E002"]
    assert "no such cache" in messages[0].msg


@pytest.mark.parametrize(
    "backend",
    [
        DJANGO_REDIS_CACHE,  # Django's own: no get_client() whose pool could be shared
        "django.core.cache.backends.locmem.LocMemCache",
    ],
)
def test_e002_alias_is_not_django_redis(no_connection: Any, backend: str) -> None:
    no_connection.REDISSTORE_CACHE_ALIAS = "sessions"
    no_connection.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:6379/2"},
    }
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.E002"]
    assert backend in messages[0].msg


def test_a_django_redis_alias_is_no_error_but_shares_that_caches_database(
    no_connection: Any,
) -> None:
    # Sessions on a cache's pool live in that cache's database: its clear() would sign everyone
    # out, so W003 names it (and W001 nothing: the default cache is in another database).
    no_connection.REDISSTORE_CACHE_ALIAS = "sessions"
    no_connection.CACHES = {
        "default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://127.0.0.1:6379/0"},
        "sessions": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://127.0.0.1:6379/2"},
    }
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.W003"]
    assert "'sessions'" in messages[0].msg


@pytest.mark.parametrize(
    "url",
    [
        "redis://alice:hunter2-secret@127.0.0.1:notaport/0",
        "redis://:hunter2-secret@127.0.0.1:6379/notadb",
        "http://alice:hunter2-secret@127.0.0.1:6379/0",
        "127.0.0.1:6379",
        "redis://alice:hunter2-secret@127.0.0.1:99999999/0",
        "redis://alice:hunter2-secret@127.0.0.1:6379/sessions",
        "redis://127.0.0.1:bad/0?password=hunter2-secret",
        "redis://alice:hunter2@secret@127.0.0.1:bad/0",
    ],
)
def test_e003_malformed_url_without_the_password(settings: Any, url: str) -> None:
    settings.REDISSTORE_URL = url
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.E003"]
    assert "hunter2" not in str(messages[0])
    assert "hunter2" not in (messages[0].hint or "")


def test_e003_through_manage_py_check_never_prints_the_password(settings: Any) -> None:
    settings.REDISSTORE_URL = "redis://alice:hunter2-secret@redis.internal:port/0"
    with pytest.raises(SystemCheckError) as raised:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "django_redisstore.E003" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert "alice" in str(raised.value)  # the message still says which URL it means


def test_e004_both_url_and_alias(settings: Any) -> None:
    settings.REDISSTORE_URL = "redis://127.0.0.1:6379/1"
    settings.REDISSTORE_CACHE_ALIAS = "default"
    settings.CACHES = {"default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://h:1/0"}}
    assert _ids() == ["django_redisstore.E004"]


@pytest.mark.parametrize("backend", [DJANGO_REDIS, DJANGO_REDIS_CACHE])
@pytest.mark.parametrize(
    ("sessions", "cache"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379"),  # db 0 implied
        ("redis://127.0.0.1/3", "redis://user:pw@127.0.0.1:6379/3"),  # port 6379 implied
        ("redis://127.0.0.1:6380/1", ["redis://other:6379/1", "redis://127.0.0.1:6380/1"]),
        ("redis://127.0.0.1:6380/1", "redis://other:6379/1,redis://127.0.0.1:6380/1"),
        ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2"),
    ],
)
def test_w001_a_cache_in_the_same_database(
    settings: Any, backend: str, sessions: str, cache: Any
) -> None:
    settings.REDISSTORE_URL = sessions
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pages": {"BACKEND": backend, "LOCATION": cache},
    }
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.W001"]
    assert "'pages'" in messages[0].msg


@pytest.mark.parametrize("backend", [DJANGO_REDIS, DJANGO_REDIS_CACHE])
@pytest.mark.parametrize(
    ("sessions", "cache"),
    [
        ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6380/0"),
        ("redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"),
        ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=3"),
    ],
)
def test_no_w001_for_another_database(
    settings: Any, backend: str, sessions: str, cache: str
) -> None:
    settings.REDISSTORE_URL = sessions
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pages": {"BACKEND": backend, "LOCATION": cache},
    }
    assert _ours() == []


def test_w003_not_w001_when_sessions_reuse_a_caches_connection(no_connection: Any) -> None:
    # Sharing the pool of a cache means sharing its database: its clear() is everyone's logout.
    # That is the setting's point, so it has an id of its own (W003): silencing it once the
    # operator made sure nothing clears that cache keeps W001 for accidental shares.
    no_connection.REDISSTORE_CACHE_ALIAS = "default"
    no_connection.CACHES = {
        "default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://127.0.0.1:6379/0"}
    }
    assert _ids() == ["django_redisstore.W003"]


def test_w001_still_names_another_cache_in_the_alias_database(no_connection: Any) -> None:
    no_connection.REDISSTORE_CACHE_ALIAS = "sessions"
    no_connection.CACHES = {
        "sessions": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://127.0.0.1:6379/2"},
        "pages": {"BACKEND": DJANGO_REDIS_CACHE, "LOCATION": "redis://127.0.0.1:6379/2"},
    }
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.W003", "django_redisstore.W001"]
    assert "'pages'" in messages[1].msg and "'sessions'" not in messages[1].msg


def test_w001_only_names_caches_that_clash(settings: Any) -> None:
    settings.REDISSTORE_URL = "redis://127.0.0.1:6379/1"
    settings.CACHES = {
        "default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://127.0.0.1:6379/0"},
        "pages": {"BACKEND": DJANGO_REDIS_CACHE, "LOCATION": "redis://127.0.0.1:6379/1"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.W001"]
    assert "'pages'" in messages[0].msg


def test_w001_is_a_warning_manage_py_check_prints_and_passes(settings: Any) -> None:
    settings.REDISSTORE_URL = "redis://127.0.0.1:6379/0"
    settings.CACHES = {"default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://127.0.0.1/0"}}
    err = StringIO()
    call_command("check", stdout=StringIO(), stderr=err)
    assert "django_redisstore.W001" in err.getvalue()


@pytest.mark.parametrize(
    "engine",
    ["django.contrib.sessions.backends.cache", "django.contrib.sessions.backends.db"],
)
def test_nothing_is_reported_for_another_session_engine(no_connection: Any, engine: str) -> None:
    no_connection.SESSION_ENGINE = engine
    no_connection.REDISSTORE_CACHE_ALIAS = "missing"
    assert _ours() == []
    no_connection.REDISSTORE_CACHE_ALIAS = None
    no_connection.REDISSTORE_URL = "redis://a:secret@h:bad/0"
    assert _ours() == []
    no_connection.CACHES = {"default": {"BACKEND": DJANGO_REDIS, "LOCATION": "redis://h:bad"}}
    assert _ours() == []


@pytest.mark.parametrize("url", [6379, ["redis://:hunter2-secret@127.0.0.1:6379/0"], b"redis://h"])
def test_e003_a_url_that_is_not_a_string(settings: Any, url: Any) -> None:
    settings.REDISSTORE_URL = url
    messages = _ours()
    assert [m.id for m in messages] == ["django_redisstore.E003"]
    assert "hunter2" not in str(messages[0])


@pytest.mark.parametrize("alias", [["default"], 3])
def test_e002_an_alias_that_is_not_a_string(no_connection: Any, alias: Any) -> None:
    no_connection.REDISSTORE_CACHE_ALIAS = alias
    assert _ids() == ["django_redisstore.E002"]


@pytest.mark.parametrize("location", [None, 42, {"host": "x"}])
def test_a_cache_location_the_check_cannot_read_is_skipped(
    settings: Any, monkeypatch: pytest.MonkeyPatch, location: Any
) -> None:
    settings.REDISSTORE_URL = "redis://127.0.0.1:6379/1"
    # Set behind Django's back: the setting_changed signal would build the broken cache.
    caches = {"default": {"BACKEND": DJANGO_REDIS, "LOCATION": location}}
    monkeypatch.setattr(django_settings._wrapped, "CACHES", caches)
    assert _ours() == []


# W002: a password in REDISSTORE_URL (check --deploy) ------------------------------------------


def _w002() -> list[CheckMessage]:
    # W002's own check only: the other deploy checks would dial the (fictional) servers these
    # tests name, and redis-py 5 warns about the socket a failed unix:// dial leaves open.
    checked = checks.check_url_password()
    assert all(m.id == "django_redisstore.W002" for m in checked)
    return checked


def _deploy_ids() -> list[str]:
    return [
        str(m.id)
        for m in run_checks(include_deployment_checks=True)
        if m.id == "django_redisstore.W002"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2-secret@127.0.0.1:6379/1",
        "redis://sessions:hunter2-secret@127.0.0.1:6379/1",
        "rediss://sessions:hunter2-secret@redis.example.com:6380/1",
        "redis://127.0.0.1:6379/1?password=hunter2-secret",
    ],
)
def test_w002_a_password_in_the_url_warns_at_deploy_without_showing_it(
    settings: Any, url: str
) -> None:
    settings.REDISSTORE_URL = url
    settings.REDISSTORE_TLS = {} if url.startswith("rediss") else None
    (message,) = _w002()
    assert "REDISSTORE_URL" in message.msg
    assert "REDISSTORE_CONNECTION_OPTIONS" in (message.hint or "")
    assert "hunter2" not in message.msg + (message.hint or "")
    assert "django_redisstore.W002" not in _ids()  # deploy only


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/1", "redis://sessions@127.0.0.1:6379/1", "unix:///tmp/r.sock"]
)
def test_w002_not_without_a_password(settings: Any, url: str) -> None:
    settings.REDISSTORE_URL = url
    settings.REDISSTORE_CONNECTION_OPTIONS = {"password": "hunter2-secret"}
    assert _w002() == []


def test_error_reports_show_the_url_password_and_mask_the_options_one(settings: Any) -> None:
    # Why W002 exists, and why its hint is the fix: Django's own filter of error reports.
    from django.views.debug import SafeExceptionReporterFilter

    settings.REDISSTORE_URL = "redis://:hunter2-url@127.0.0.1:6379/1"
    settings.REDISSTORE_CONNECTION_OPTIONS = {"password": "hunter2-options"}
    shown = SafeExceptionReporterFilter().get_safe_settings()

    assert "hunter2-url" in shown["REDISSTORE_URL"]
    assert shown["REDISSTORE_CONNECTION_OPTIONS"]["password"] != "hunter2-options"


@pytest.mark.parametrize("limit", [0, -1, 2.5, "3", True])
def test_e040_a_per_user_limit_that_is_not_a_count(settings: Any, limit: Any) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = limit
    assert _ids() == ["django_redisstore.E040"]


@pytest.mark.parametrize("limit", [None, 1, 5])
def test_a_per_user_limit_of_none_or_a_count_reports_nothing(settings: Any, limit: Any) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = limit
    assert _ids() == []


def test_e041_an_unknown_per_user_limit_policy(settings: Any) -> None:
    settings.REDISSTORE_MAX_SESSIONS_PER_USER = 3
    settings.REDISSTORE_MAX_SESSIONS_POLICY = "end_newest"
    assert _ids() == ["django_redisstore.E041"]


@pytest.mark.parametrize(
    ("session_middleware", "save_every_request", "expected"),
    [
        ("django.contrib.sessions.middleware.SessionMiddleware", True, ["django_redisstore.W012"]),
        ("django.contrib.sessions.middleware.SessionMiddleware", False, []),
        ("django_redisstore.middleware.RedisUnavailableMiddleware", True, []),
    ],
)
def test_w012_anonymous_mode_saving_every_request_needs_the_503_middleware(
    settings: Any, session_middleware: str, save_every_request: bool, expected: list[str]
) -> None:
    settings.REDISSTORE_URL = "redis://127.0.0.1:6379/1"
    settings.REDISSTORE_ON_REDIS_ERROR = "anonymous"
    settings.SESSION_SAVE_EVERY_REQUEST = save_every_request
    settings.MIDDLEWARE = [session_middleware]
    assert _ids() == expected
