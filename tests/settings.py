"""Django settings for the test suite; the Redis address is filled in by tests/conftest.py."""

from __future__ import annotations

SECRET_KEY = "django-redisstore-tests-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_redisstore",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.urls"
SESSION_ENGINE = "django_redisstore.session"
REDISSTORE_URL = "redis://127.0.0.1:1/0"  # replaced per test by the redis_url fixture
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
