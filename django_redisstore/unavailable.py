"""``RedisUnavailableMiddleware`` under its first import path: the class lives in ``middleware``.

Private: kept so that ``MIDDLEWARE`` entries naming
``django_redisstore.unavailable.RedisUnavailableMiddleware`` keep working.
"""

from __future__ import annotations

from .middleware import PAGE, RedisUnavailableMiddleware, unavailable_response

__all__ = ["PAGE", "RedisUnavailableMiddleware", "unavailable_response"]
