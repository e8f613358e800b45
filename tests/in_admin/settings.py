"""A site with the Django admin, for tests/in_admin/cases.py (run by tests/test_admin.py in a
process of its own: the suite's settings have no admin). ``REDISSTORE_TEST_USER_MODEL=custom``
swaps in a custom user model (``members.Member``, a UUID primary key, registered with its own
``ModelAdmin``)."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.site_templates import templates

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_redisstore",
]
if os.environ.get("REDISSTORE_TEST_USER_MODEL") == "custom":
    INSTALLED_APPS.append("tests.in_admin.members")  # after ours: registered after our ready()
    AUTH_USER_MODEL = "members.Member"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = templates()
ROOT_URLCONF = "tests.in_admin.urls"
