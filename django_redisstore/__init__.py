"""django-redisstore: Django sessions in Redis.

Set ``SESSION_ENGINE = "django_redisstore.session"`` and ``REDISSTORE_URL``; see README.rst.
"""

from __future__ import annotations

__version__ = "0.1.0"
