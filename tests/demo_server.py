"""The demo site (testproject) served on a free loopback port, for browser tests and screenshots.

It runs in a process of its own (``manage.py runserver --noreload``) with its own SQLite file,
key prefix and secret, against the Redis server it is given, and has one user made with
``createsuperuser --noinput`` and Django's ``DJANGO_SUPERUSER_*`` variables.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

import redis

from .redis_servers import delete_keys, free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "alice"
PASSWORD = "correct-horse-battery"


class DemoServer:
    def __init__(self, redis_url: str, **settings: str) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="redisstore-demo-"))
        self.prefix = f"rsdemo{os.getpid()}-{self.port}"
        self.secret = f"demo-test-secret-{self.port}-not-secret"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_url,
            "DEMO_DATABASE": str(self.directory / "demo.sqlite3"),
            "DJANGO_SECRET_KEY": self.secret,
            "REDISSTORE_KEY_PREFIX": self.prefix,
            "DJANGO_SUPERUSER_USERNAME": USERNAME,
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "DJANGO_SUPERUSER_EMAIL": "alice@example.com",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log: BinaryIO | None = None

    host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def on_host(self, host: str) -> DemoServer:
        """The same running server, addressed by another name (``localhost``)."""
        other = copy.copy(self)
        other.host = host
        return other

    def manage(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")

    def start(self, timeout: float = 20.0) -> DemoServer:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("createsuperuser", "--noinput")
        self.log = log = (self.directory / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload",
             f"127.0.0.1:{self.port}"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/accounts/login/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise RuntimeError(f"the demo server did not start: {tail}") from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        log = self.directory / "server.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def session_name(self, cookie_value: str) -> str:
        """The Redis key of the demo session whose cookie is ``cookie_value``."""
        from django_redisstore import keys

        return f"{self.prefix}:s:{keys.session_id(cookie_value, secret=self.secret)}"

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None
        shutil.rmtree(self.directory, ignore_errors=True)
        with redis.Redis.from_url(self.redis_url) as client:
            delete_keys(client, f"{self.prefix}:*")
