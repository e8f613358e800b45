"""What ``python -m build`` makes: a wheel with the whole package and its licence, an sdist
that runs the test suite, metadata that ``twine check --strict`` accepts."""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from .distributions import CHECKOUT, PACKAGE, Distributions, outside_env, source_files

# What the sdist must hold for its tests to run, besides the package (checked file by file).
SUITE_DIRECTORIES = ("tests", "testproject")
SUITE_FILES = ("noxfile.py", "manage.py", "pyproject.toml", "README.rst", "LICENSE")


def metadata(distributions: Distributions) -> email.message.Message:
    with zipfile.ZipFile(distributions.wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def run_outside(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python in ``cwd`` with none of the variables that point the suite at a wheel."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_wheel_holds_every_file_of_the_package_and_nothing_else(
    distributions: Distributions,
) -> None:
    names = distributions.wheel_names()
    package = {n for n in names if n.startswith(f"{PACKAGE}/")}
    assert f"{PACKAGE}/management/commands/sessions.py" in package
    assert f"{PACKAGE}/py.typed" in package
    assert package == source_files(PACKAGE)
    assert all(n.startswith((f"{PACKAGE}/", f"{PACKAGE}-")) for n in names)


def test_wheel_carries_the_licence(distributions: Distributions) -> None:
    (licence,) = (n for n in distributions.wheel_names() if n.endswith("/LICENSE"))
    assert re.fullmatch(rf"{PACKAGE}-[^/]+\.dist-info/licenses/LICENSE", licence)
    with zipfile.ZipFile(distributions.wheel) as archive:
        assert archive.read(licence) == (CHECKOUT / "LICENSE").read_bytes()
    assert "BSD 3-Clause License" in (CHECKOUT / "LICENSE").read_text()


def test_licence_metadata_is_an_spdx_expression_without_the_old_classifier(
    distributions: Distributions,
) -> None:
    meta = metadata(distributions)
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["License"] is None
    assert not [c for c in meta.get_all("Classifier", []) if c.startswith("License ::")]


def test_a_django_classifier_for_every_version_the_readme_supports(
    distributions: Distributions,
) -> None:
    readme = (CHECKOUT / "README.rst").read_text()
    requirement = re.search(r"Requirements: .*?Django ([\d., or]+?),? redis-py", readme, re.S)
    assert requirement, "README.rst's Requirements line names no Django versions"
    supported = re.findall(r"\d+\.\d+", requirement.group(1))
    assert len(supported) >= 3
    classifiers = metadata(distributions).get_all("Classifier", [])
    declared = [
        c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django ::")
    ]
    assert declared == supported


def test_build_prints_no_deprecation_warning(distributions: Distributions) -> None:
    assert "Successfully built" in distributions.build_log
    assert [
        line for line in distributions.build_log.splitlines() if "deprecat" in line.lower()
    ] == []


def test_twine_check_strict_passes_on_both_files(distributions: Distributions) -> None:
    done = run_outside(
        ["-m", "twine", "check", "--strict", str(distributions.wheel), str(distributions.sdist)],
        cwd=distributions.wheel.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_sdist_holds_the_package_and_what_the_test_suite_needs(
    distributions: Distributions,
) -> None:
    names = distributions.sdist_names()
    for required in ("tests/conftest.py", "tests/settings.py", "testproject/settings.py"):
        assert required in names
    for name in SUITE_FILES:
        assert name in names
    for directory in (PACKAGE, *SUITE_DIRECTORIES):
        missing = source_files(directory) - names
        assert not missing, f"the sdist lacks {sorted(missing)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".sqlite3")]


def test_the_tests_run_from_the_unpacked_sdist(
    distributions: Distributions, tmp_path: Path
) -> None:
    """Collection of the whole suite, then one test that talks to a Redis server it starts."""
    top = distributions.unpack_sdist(tmp_path)
    collected = run_outside(["-m", "pytest", "--collect-only", "-q"], cwd=top)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    count = re.search(r"^(\d+)(?:/\d+)? tests? collected", collected.stdout, re.M)
    assert count and int(count.group(1)) > 0, collected.stdout[-3000:]
    ran = run_outside(["-m", "pytest", "-q", "tests/test_smoke.py"], cwd=top)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert re.search(r"^1 passed", ran.stdout, re.M), ran.stdout[-3000:]


def test_a_run_that_must_test_the_wheel_stops_when_it_imports_the_checkout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/test_smoke.py"],
        cwd=CHECKOUT,
        env=outside_env() | {"REDISSTORE_TEST_INSTALLED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's "usage error"
    assert "django_redisstore was imported from" in done.stderr
    assert f"{CHECKOUT / PACKAGE} (inside the checkout)" in done.stderr
