"""Settings for the load test: testproject's, with the session engine picked by an env var.

``BENCH_SESSION_ENGINE`` is ``redisstore`` (this engine) or ``cache`` (Django's cache engine on
django-redis, the usual alternative); ``REDIS_URL`` is the server ``loadtest.py`` started.
"""

from __future__ import annotations

import os

from testproject.settings import *  # noqa: F403

ENGINES = {
    "redisstore": "django_redisstore.session",
    "cache": "django.contrib.sessions.backends.cache",
}
SESSION_ENGINE = ENGINES[os.environ.get("BENCH_SESSION_ENGINE", "redisstore")]
CACHES = {
    "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": os.environ["REDIS_URL"]}
}
DEBUG = False
ROOT_URLCONF = "bench.loadurls"
