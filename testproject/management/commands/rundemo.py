"""``python manage.py rundemo``: the demo site on this engine, with a Redis server if needed."""

from __future__ import annotations

import atexit
import os
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Serve the demo site at http://127.0.0.1:8000/ with sessions in the Redis that REDIS_URL "
        "names; when nothing answers there on this machine, start a redis-server for the demo."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        self.ensure_redis(settings.REDISSTORE_URL)
        call_command("migrate", verbosity=0, interactive=False)
        self.ensure_user()
        call_command("runserver", options["addrport"], use_reloader=False)

    def ensure_redis(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            client.ping()
            return
        except redis.ConnectionError:
            pass
        finally:
            client.close()
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError(f"Redis at {parts.hostname}:{parts.port} does not answer.")
        from tests.redis_servers import RedisServer

        server = RedisServer(port=parts.port or 6379).start()
        atexit.register(server.stop)
        self.stdout.write(f"Started redis-server on port {server.port} for the demo.")

    def ensure_user(self) -> None:
        users = get_user_model()._default_manager
        if os.environ.get("DJANGO_SUPERUSER_USERNAME"):
            if not users.filter(username=os.environ["DJANGO_SUPERUSER_USERNAME"]).exists():
                call_command("createsuperuser", interactive=False, verbosity=0)
        elif not users.exists():
            users.create_user(username="demo", password="demo")  # type: ignore[attr-defined]
            self.stdout.write("Created the user 'demo' with the password 'demo'.")
