"""The ``TEMPLATES`` setting of a site as the page tests build it (messages, auth, request)."""

from __future__ import annotations

from typing import Any

CONTEXT_PROCESSORS = [
    "django.template.context_processors.request",
    "django.contrib.auth.context_processors.auth",
    "django.contrib.messages.context_processors.messages",
]


def templates(
    *, messages: bool = True, extra: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Apps' templates, plus ``extra`` (name: source) in memory; without the messages context
    processor when ``messages`` is False."""
    loaders: list[Any] = ["django.template.loaders.app_directories.Loader"]
    if extra:
        loaders.insert(0, ("django.template.loaders.locmem.Loader", extra))
    processors = CONTEXT_PROCESSORS if messages else CONTEXT_PROCESSORS[:2]
    return [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {"context_processors": processors, "loaders": loaders},
        }
    ]
