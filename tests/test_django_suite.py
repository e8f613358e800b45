"""Django's own ``SessionTestsMixin``, run unchanged against this engine.

Django does not ship its test suite in the wheel, so the source distribution of the installed
Django version is fetched once (``pip download``) into a cache under the system temp directory,
and only ``tests/sessions_tests/`` is taken from it. Its ``models.py`` declares a model of an app
that is not installed here; the one name the test module takes from it (a database-backed store
we never run) is stubbed. Without network access, or with ``REDISSTORE_SKIP_DJANGO_SUITE`` set,
the module is skipped with the reason (on CI, with ``CI`` set, either is a failure instead);
``tests/test_contract.py`` covers the same ground.
Django's ``SessionMiddlewareTests`` run too (one of them reads the database backend's table and
is restated here against Redis).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import django
import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, SimpleTestCase, override_settings

from django_redisstore import clients
from django_redisstore.session import SessionStore

from .django_versions import on_ci

_PACKAGE = "django_upstream_sessions_tests"


def _sdist_tests_dir() -> Path:
    """``tests/sessions_tests`` of the installed Django's sdist, downloaded on first use."""
    version = django.get_version()
    cache = Path(tempfile.gettempdir()) / "django-redisstore-django-src" / version
    target = cache / "sessions_tests"
    if (target / "tests.py").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # Download and extract in a directory of this process's own, then rename it into place:
    # parallel test runs (several worktrees, xdist) never see a half-written copy.
    work = Path(tempfile.mkdtemp(dir=cache, prefix="fetch-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "--retries", "1", "--timeout", "30", "--dest", str(work),
             f"django=={version}"],
            check=True, timeout=300, capture_output=True,
        )  # fmt: skip
        (archive,) = [p for p in work.iterdir() if p.name.lower().startswith("django-")]
        partial = work / "sessions_tests"
        partial.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (
                    len(parts) == 4
                    and parts[1:3] == ("tests", "sessions_tests")
                    and member.isfile()
                ):
                    source = tar.extractfile(member)
                    assert source is not None
                    (partial / parts[3]).write_bytes(source.read())
        try:
            partial.rename(target)
        except OSError:  # another run got there first
            if not (target / "tests.py").exists():
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load_upstream() -> types.ModuleType:
    directory = _sdist_tests_dir()
    package = types.ModuleType(_PACKAGE)
    package.__path__ = [str(directory)]
    models = types.ModuleType(f"{_PACKAGE}.models")
    models.SessionStore = None  # type: ignore[attr-defined]
    sys.modules[_PACKAGE] = package
    sys.modules[f"{_PACKAGE}.models"] = models
    spec = importlib.util.spec_from_file_location(f"{_PACKAGE}.tests", directory / "tests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if os.environ.get("REDISSTORE_SKIP_DJANGO_SUITE"):
    pytest.skip("REDISSTORE_SKIP_DJANGO_SUITE is set", allow_module_level=True)
try:
    upstream = _load_upstream()
except (OSError, ValueError, subprocess.SubprocessError, tarfile.TarError) as e:
    if on_ci():  # CI runs Django's own tests or fails: a download error is no reason to pass
        raise RuntimeError(f"cannot fetch Django's own session tests on CI: {e}") from e
    pytest.skip(f"cannot fetch Django's own session tests: {e}", allow_module_level=True)


class DjangoSessionTestsMixin(upstream.SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    """Every test of Django's mixin, sync and (Django 5.1+) async, with ``USE_TZ = True``."""

    backend = SessionStore


def _closing_async_client(test: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Any]:
    """Django runs each async test on an event loop of its own (``async_to_sync``): close the
    engine's client for that loop before the loop goes, or its sockets outlive it."""

    @functools.wraps(test)
    async def run(self: Any) -> None:
        try:
            await test(self)
        finally:
            await clients.get_async_client().aclose()

    return run


for _name, _test in inspect.getmembers(upstream.SessionTestsMixin, inspect.iscoroutinefunction):
    if _name.startswith("test"):
        setattr(DjangoSessionTestsMixin, _name, _closing_async_client(_test))


@override_settings(USE_TZ=False)
class DjangoSessionTestsMixinNaive(DjangoSessionTestsMixin):
    """The same with ``USE_TZ = False``."""


class DjangoSessionMiddlewareTests(upstream.SessionMiddlewareTests):  # type: ignore[misc]
    """Django's tests of ``SessionMiddleware``, with this engine as ``SESSION_ENGINE``."""

    def test_empty_session_saved(self) -> None:
        """Django's test reads the ``Session`` table; the same steps, read back from Redis."""

        def set_session(request: HttpRequest) -> HttpResponse:
            request.session["foo"] = "bar"
            return HttpResponse("Session test")

        request = RequestFactory().get("/")
        middleware = SessionMiddleware(set_session)
        response = middleware(request)
        key = request.session.session_key
        self.assertEqual(tuple(request.session.items()), (("foo", "bar"),))
        self.assertIn(f"Set-Cookie: sessionid={key}", str(response.cookies))

        del request.session["foo"]  # emptied, not flushed: still saved, cookie still set
        response = middleware.process_response(request, HttpResponse("Session test"))
        self.assertEqual(request.session.session_key, key)
        self.assertIs(SessionStore().exists(key), True)
        self.assertEqual(SessionStore(key).load(), {})
        self.assertIn(f"Set-Cookie: sessionid={key}", str(response.cookies))
        self.assertEqual(response.headers["Vary"], "Cookie")
