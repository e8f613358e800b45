"""Packaging shim: the project's metadata lives in pyproject.toml."""

from __future__ import annotations

from setuptools import setup

setup()
