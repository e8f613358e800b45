"""The Django app config: registers the system checks. Private: no stable API."""

from __future__ import annotations

from django.apps import AppConfig, apps


class RedisStoreConfig(AppConfig):
    name = "django_redisstore"
    verbose_name = "Redis sessions"

    def ready(self) -> None:
        from . import checks

        checks.register_checks()
        if apps.is_installed("django.contrib.admin"):
            from . import admin  # imports django.contrib.admin: only when it is installed

            admin.register_after_autodiscovery()
