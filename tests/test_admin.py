"""The admin integration (tests/in_admin/cases.py), in a process of its own with a site that has
the Django admin: once with Django's ``User``, once with a custom user model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = 12


@pytest.mark.parametrize("user_model", ["default", "custom"])
def test_the_admin_cases_pass(user_model: str, redis_server_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "--no-migrations",
            "--ds", "tests.in_admin.settings", "tests/in_admin/cases.py",
        ],
        env={**os.environ, "REDIS_URL": redis_server_url,
             "REDISSTORE_TEST_USER_MODEL": user_model},
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert f"{CASES} passed" in done.stdout
