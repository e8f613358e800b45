"""Settings of the demo site: sessions in the Redis database that ``REDIS_URL`` names."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_redisstore",
    "testproject",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_redisstore.middleware.DeviceMiddleware",
]
ROOT_URLCONF = "testproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", str(BASE_DIR / "demo.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# Plain http on any port: the forms post to their own origin, which Django's CSRF check accepts
# without CSRF_TRUSTED_ORIGINS; the cookies are not Secure-only (no TLS here).

# The engine under demonstration.
SESSION_ENGINE = "django_redisstore.session"
REDISSTORE_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDISSTORE_KEY_PREFIX = os.environ.get("REDISSTORE_KEY_PREFIX", "redisstore")
# Sessions end after an hour without a request (reads slide the TTL) and, remembered or not,
# 30 days after sign-in at the latest; "Remember me" keeps one 14 days without a request.
REDISSTORE_IDLE_TIMEOUT = int(os.environ.get("REDISSTORE_IDLE_TIMEOUT", 3600))
REDISSTORE_ABSOLUTE_TIMEOUT = int(os.environ.get("REDISSTORE_ABSOLUTE_TIMEOUT", 30 * 86400))
REDISSTORE_REMEMBER_ME_AGE = int(os.environ.get("REDISSTORE_REMEMBER_ME_AGE", 14 * 86400))
REDISSTORE_DEVICE_UPDATE_INTERVAL = 60
# The package's "Your sessions" pages, in the demo's frame.
REDISSTORE_BASE_TEMPLATE = "testproject/base.html"
