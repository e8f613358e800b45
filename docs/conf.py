"""Sphinx configuration of the documentation (``python -m nox -s docs`` builds it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.search(
    r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.MULTILINE
)

project = "django-redisstore"
author = "The django-redisstore developers"
copyright = "The django-redisstore developers"
release = _VERSION.group(1) if _VERSION else "unknown"
version = release

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt", "screenshots.py"]
# Literal blocks without a language are console transcripts or output, never Python.
highlight_language = "none"

html_theme = "furo"
html_title = f"django-redisstore {release}"
html_static_path: list[str] = []
