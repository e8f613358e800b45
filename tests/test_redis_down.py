"""``manage.py sessions`` with Redis down: every subcommand and flag ends in a clean
``CommandError`` naming the address (never its password), not a redis-py traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError

from .command_helpers import sessions
from .redis_servers import free_port
from .test_command_import import (  # noqa: F401  (fixtures)
    django_redis_cache,
    make_source_sessions,
    redis_sessions_settings,
)

PASSWORD = "hunter2-never-shown"
KEY = "a" * 32


@pytest.fixture
def down(settings: Any) -> Iterator[str]:
    """Point the engine at a port nothing listens on; yield the address errors must name."""
    port = free_port()
    settings.REDISSTORE_URL = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    settings.REDISSTORE_RETRIES = 0
    yield f"127.0.0.1:{port}"


def fails_cleanly(address: str, *args: str) -> None:
    with pytest.raises(CommandError) as raised:
        sessions(*args)
    message = str(raised.value)
    assert address in message
    assert PASSWORD not in message
    assert "Traceback" not in message


INSPECT = [
    ("inspect",),
    ("inspect", KEY),
    ("inspect", "--user", "42"),
]
SELECTORS = [
    ("--all",),
    ("--user", "42"),
    ("--key", KEY),
    ("--anonymous",),
    ("--idle-over", "7d"),
    ("--older-than", "30d"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("args", INSPECT)
@pytest.mark.parametrize("output", [(), ("--format", "json")])
def test_inspect_with_redis_down(
    down: str, args: tuple[str, ...], output: tuple[str, ...]
) -> None:
    fails_cleanly(down, *args, *output)


@pytest.mark.django_db
@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("mode", [("--dry-run",), ("--yes",), ("--yes", "--format", "json")])
def test_purge_with_redis_down(
    down: str, selector: tuple[str, ...], mode: tuple[str, ...]
) -> None:
    fails_cleanly(down, "purge", *selector, *mode)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["db", "cached_db"])
def test_import_from_the_database_with_redis_down(down: str, engine: str) -> None:
    make_source_sessions(f"django.contrib.sessions.backends.{engine}", count=1)
    fails_cleanly(down, "import", "--from", engine, "--dry-run")


def test_import_from_the_cache_with_redis_down(
    down: str,
    django_redis_cache: str,  # noqa: F811
) -> None:
    make_source_sessions("django.contrib.sessions.backends.cache", count=1)
    fails_cleanly(
        down, "import", "--from", "cache", "--cache-alias", django_redis_cache, "--dry-run"
    )


# django-redis-sessions (last release 2021) writes with a command redis-py 8 deprecates.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_import_from_redis_sessions_with_redis_down(
    down: str,
    redis_sessions_settings: Any,  # noqa: F811
) -> None:
    make_source_sessions("redis_sessions.session", count=1)
    fails_cleanly(down, "import", "--from", "redis_sessions", "--dry-run")


def test_manage_py_prints_one_line_and_no_traceback() -> None:
    """The issue's case, as a user runs it: ``manage.py sessions inspect --user 42``."""
    root = Path(__file__).resolve().parent.parent
    code = (
        "import django, os, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        f"settings.REDISSTORE_URL = 'redis://:{PASSWORD}@127.0.0.1:{free_port()}/0'\n"
        "settings.REDISSTORE_RETRIES = 0\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'sessions', 'inspect', '--user', '42'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: Redis at 127.0.0.1:")
    assert PASSWORD not in result.stderr + result.stdout
