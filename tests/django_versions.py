"""The one kind of skip a CI run allows: a test of an API that the cell's Django lacks.

Mark such a test ``@needs_async_api`` (or ``@pytest.mark.needs_django(version, feature)``), or
call ``skip_below`` from a fixture; ``tests/conftest.py`` fails every other skip when ``CI`` is
set.
"""

from __future__ import annotations

import os

import django
import pytest

#: Set on a test that skipped because its Django is older than what the test needs.
ALLOWED_SKIP = pytest.StashKey[bool]()

ASYNC_API = (5, 1)
ASYNC_API_FEATURE = "Django's async session API (aget, asave, aflush...)"
needs_async_api = pytest.mark.needs_django(ASYNC_API, ASYNC_API_FEATURE)


def on_ci() -> bool:
    """Whether this run is CI's (``CI`` set, as CI services and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def skip_below(item: pytest.Item, version: tuple[int, int], feature: str) -> None:
    """Skip ``item`` if the running Django is older than ``version``, saying both versions."""
    if django.VERSION[:2] < version:
        item.stash[ALLOWED_SKIP] = True
        pytest.skip(
            f"{feature} is new in Django {version[0]}.{version[1]}; "
            f"this run has Django {django.get_version()}"
        )
