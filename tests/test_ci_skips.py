"""With ``CI`` set, a skipped test fails the run, unless its Django is too old for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import django
import pytest

from .django_versions import ASYNC_API

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import pytest

from tests.django_versions import needs_async_api


def test_skips() -> None:
    pytest.skip("no reason worth a pass")


@pytest.mark.skipif(True, reason="no browser here")
def test_skipped_by_a_condition() -> None:
    pass


@pytest.mark.needs_django((99, 0), "a feature of Django 99")
def test_of_a_future_django() -> None:
    pass


@needs_async_api
def test_of_the_async_api() -> None:
    pass
"""


def run_probe(tmp_path: Path, ci: str | None) -> str:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import (\n"
        "    pytest_make_collect_report, pytest_runtest_makereport, pytest_runtest_setup\n"
        ")\n"
    )
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "no:django"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


@pytest.mark.parametrize("ci", ["1", "true"])
def test_on_ci_a_skip_fails_unless_the_django_version_is_the_reason(
    tmp_path: Path, ci: str
) -> None:
    out = run_probe(tmp_path, ci)
    assert "FAILED test_probe.py::test_skips - skipped on CI" in out
    assert "ERROR test_probe.py::test_skipped_by_a_condition - skipped on CI" in out
    assert "a feature of Django 99 is new in Django 99.0; this run has Django" in out
    async_api = "1 passed" if django.VERSION >= ASYNC_API else "2 skipped"
    assert f"1 failed, {async_api}" in out and "1 error" in out


def test_off_ci_skips_stay_skips(tmp_path: Path) -> None:
    out = run_probe(tmp_path, None)
    assert "failed" not in out and "error" not in out
    assert ("3 skipped" if django.VERSION >= ASYNC_API else "4 skipped") in out
