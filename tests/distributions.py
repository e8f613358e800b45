"""The wheel and sdist under test, and where the suite imports the package from.

``python -m nox`` builds both files once per test cell, installs the wheel and runs the suite
from the unpacked sdist, outside the checkout. It tells the suite so through three variables:

``REDISSTORE_TEST_INSTALLED``
    set: the suite must import ``django_redisstore`` from site-packages (the conftest stops the
    run otherwise);
``REDISSTORE_DIST``
    the directory holding the two files it built and the build's output (``build.log``);
``REDISSTORE_CHECKOUT``
    the source tree they were built from.

Without them (``python -m pytest`` in a checkout) the suite builds both files itself, once, from
a copy of the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import django_redisstore

PACKAGE = "django_redisstore"
CHECKOUT = Path(os.environ.get("REDISSTORE_CHECKOUT") or Path(__file__).parent.parent).resolve()
INSTALLED_VARIABLES = ("REDISSTORE_TEST_INSTALLED", "REDISSTORE_DIST", "REDISSTORE_CHECKOUT")
# What a checkout holds that is no source: the copy built from leaves it out, and so do the
# comparisons of a distribution with the checkout.
NOT_SOURCE = (
    *(".git", ".nox", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.py[cod]"),
    *(".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "*.sqlite3"),
)


@dataclass(frozen=True)
class Distributions:
    wheel: Path
    sdist: Path
    build_log: str

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())

    def sdist_names(self) -> set[str]:
        """The sdist's files, relative to its top directory (``django_redisstore-X.Y.Z/``)."""
        with tarfile.open(self.sdist) as archive:
            return {m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()}

    def unpack_sdist(self, into: Path) -> Path:
        """Unpack the sdist under ``into``; returns its top directory."""
        with tarfile.open(self.sdist) as archive:
            archive.extractall(into, filter="data")
        (top,) = into.iterdir()
        return top


def built(workdir: Path) -> Distributions:
    """The files ``REDISSTORE_DIST`` holds, or both built now from a copy of the checkout."""
    given = os.environ.get("REDISSTORE_DIST")
    if given:
        return found(Path(given))
    # A copy, so that the build neither writes into the checkout nor reads a stale egg-info
    # there (setuptools adds the files listed in an old SOURCES.txt to the sdist).
    source = workdir / "source"
    shutil.copytree(CHECKOUT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = workdir / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout}\n{done.stderr}"
    (out / "build.log").write_text(done.stdout + done.stderr)
    return found(out)


def found(directory: Path) -> Distributions:
    (wheel,) = directory.glob("*.whl")
    (sdist,) = directory.glob("*.tar.gz")
    return Distributions(wheel, sdist, (directory / "build.log").read_text())


def source_files(directory: str) -> set[str]:
    """The checkout's files under ``directory``, as paths relative to the checkout."""
    ignored = shutil.ignore_patterns(*NOT_SOURCE)
    names = set()
    for parent, dirs, files in os.walk(CHECKOUT / directory):
        dirs[:] = sorted(set(dirs) - ignored(parent, dirs))
        for name in set(files) - ignored(parent, files):
            names.add((Path(parent) / name).relative_to(CHECKOUT).as_posix())
    return names


def outside_env() -> dict[str, str]:
    """This process's environment without what points Python or Django at this run: for a
    process that must find everything where a user's would (an unpacked sdist, a new project)."""
    drop = {*INSTALLED_VARIABLES, "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("DJANGO_")}


def import_problem() -> str | None:
    """Why the ``django_redisstore`` this process imported is not the installed one, or None."""
    imported = Path(django_redisstore.__file__).resolve().parent
    site_packages = {Path(sysconfig.get_path(s)).resolve() for s in ("purelib", "platlib")}
    if imported.parent in site_packages:
        return None
    inside = " (inside the checkout)" if imported.is_relative_to(CHECKOUT) else ""
    expected = ", ".join(map(str, sorted(site_packages)))
    return (
        f"REDISSTORE_TEST_INSTALLED is set, but django_redisstore was imported from {imported}"
        f"{inside}, not from this environment's site-packages ({expected}). "
        "The suite must test the installed wheel: run it as `python -m nox` does, from a "
        "directory that has no django_redisstore/ (the unpacked sdist without it), or unset "
        "REDISSTORE_TEST_INSTALLED to test the checkout."
    )
