"""A new user's project: ``django-admin startproject`` in a virtualenv that holds the built wheel
and nothing from the checkout, configured with README.rst's own code blocks, then used as the
manual says (sign-in with "Remember me", ``manage.py sessions``, ``check --deploy``).

The blocks are read from README.rst, so that the manual and this test cannot drift apart: a
settings block goes at the end of ``settings.py``, a block that extends ``urlpatterns`` at the
end of ``urls.py``, any other block (a view, a form) into a module of the project.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import django
import pytest
import redis
from docutils import nodes  # type: ignore[import-untyped]
from docutils.core import publish_doctree  # type: ignore[import-untyped]

from .distributions import CHECKOUT, Distributions, outside_env
from .redis_servers import delete_keys

# The sections of README.rst (subsections included) whose blocks configure a new project.
README_SECTIONS = ("Installation", "Remember me")
PROJECT = "mysite"
USERNAME, PASSWORD = "ada", "correct horse battery staple"

SIGN_IN = """
import json
import os
from datetime import timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()

import django_redisstore
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment

import mysite.readme_code  # the README's blocks that are neither settings nor urls

setup_test_environment()  # lets the test client's host, "testserver", in
client = Client()
form = {"username": os.environ["SIGN_IN_USER"], "password": os.environ["SIGN_IN_PASSWORD"]}
form["remember_me"] = "on"
response = client.post("/accounts/login/", form)
cookie = response.cookies[settings.SESSION_COOKIE_NAME]
def seconds(value):
    return value.total_seconds() if isinstance(value, timedelta) else value

print(json.dumps({
    "status": response.status_code,
    "max_age": cookie["max-age"],
    "expires": cookie["expires"],
    "remember_me_age": seconds(settings.REDISSTORE_REMEMBER_ME_AGE),
    "absolute_timeout": seconds(getattr(settings, "REDISSTORE_ABSOLUTE_TIMEOUT", None)),
    "user_id": client.session["_auth_user_id"],
    "package": django_redisstore.__file__,
}))
"""


def readme_blocks(kind: str) -> list[str]:
    """The ``kind`` ("python", "shell") code blocks of README_SECTIONS, in order."""
    doctree = publish_doctree(
        (CHECKOUT / "README.rst").read_text(),
        settings_overrides={"report_level": 5, "syntax_highlight": "none"},
    )
    blocks = []
    for title in README_SECTIONS:
        (section,) = [s for s in doctree.findall(nodes.section) if s[0].astext() == title]
        blocks += [
            block.astext()
            for block in section.findall(nodes.literal_block)
            if kind in block["classes"]
        ]
    return blocks


def destination(block: str) -> str:
    """Where a pasted block goes: ``settings.py``, ``urls.py`` or the project's own module."""
    statements = ast.parse(block).body
    assigned = [
        target.id
        for s in statements
        if isinstance(s, ast.Assign | ast.AugAssign)
        for target in (s.targets if isinstance(s, ast.Assign) else [s.target])
        if isinstance(target, ast.Name)
    ]
    if "urlpatterns" in assigned:
        return "urls.py"
    settings_only = all(
        isinstance(s, ast.Assign | ast.AugAssign | ast.Import | ast.ImportFrom) for s in statements
    )
    if settings_only and assigned and all(name.isupper() for name in assigned):
        return "settings.py"
    return "readme_code.py"


@dataclass
class Project:
    directory: Path
    python: Path
    env: dict[str, str]
    prefix: str

    def run(self, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(self.python), "-c", script] if script else [str(self.python), *args]
        return subprocess.run(
            command, cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=600
        )

    def manage(self, *args: str) -> str:
        done = self.run("manage.py", *args)
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr


def checked(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{shlex.join(map(str, done.args))}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def project(
    distributions: Distributions, tmp_path_factory: pytest.TempPathFactory, redis_server_url: str
) -> Iterator[Project]:
    home = tmp_path_factory.mktemp("user-project")
    assert not home.resolve().is_relative_to(CHECKOUT)
    env = outside_env()
    checked(
        subprocess.run(
            [sys.executable, "-m", "venv", str(home / "venv")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    )
    scripts = home / "venv" / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / "python"
    # README's install command, with the wheel under test in place of the name on PyPI, and
    # the Django and redis-py of this run (so that each matrix cell tests its own versions).
    shell = [line for block in readme_blocks("shell") for line in block.splitlines()]
    (install,) = [line for line in shell if " install " in line]
    requirements = shlex.split(install.split(" install ", 1)[1])
    assert [r for r in requirements if r.startswith("django-redisstore")], install
    requirements = [r.replace("django-redisstore", str(distributions.wheel)) for r in requirements]
    checked(
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                *requirements,
                f"Django=={django.__version__}",
                f"redis=={redis.__version__}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    )
    checked(
        subprocess.run(
            [str(scripts / "django-admin"), "startproject", PROJECT],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    )
    package = home / PROJECT / PROJECT
    prefix = f"userproject{os.getpid()}"
    for block in readme_blocks("python"):
        with (package / destination(block)).open("a") as module:
            module.write("\n\n" + block + "\n")
    with (package / "settings.py").open("a") as settings:
        settings.write(f"\nREDISSTORE_URL = {redis_server_url!r}  # the suite's server\n")
        settings.write(f"REDISSTORE_KEY_PREFIX = {prefix!r}\n")
    env |= {"SIGN_IN_USER": USERNAME, "SIGN_IN_PASSWORD": PASSWORD}
    yield Project(home / PROJECT, python, env, prefix)
    client = redis.Redis.from_url(redis_server_url)
    try:
        delete_keys(client, f"{prefix}:*")
    finally:
        client.close()


def test_readme_blocks_each_have_a_place_in_a_project() -> None:
    blocks = readme_blocks("python")
    places = [destination(b) for b in blocks]
    assert "settings.py" in places and "urls.py" in places
    assert any("SESSION_ENGINE" in b for b in blocks)
    assert any("RememberMeLoginView" in b for b in blocks)


def test_remember_me_sign_in_then_the_sessions_command_in_a_new_project(
    project: Project, redis_client: redis.Redis
) -> None:
    project.manage("migrate", "--noinput")
    project.env.update(
        DJANGO_SUPERUSER_USERNAME=USERNAME,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        DJANGO_SUPERUSER_EMAIL="ada@example.com",
    )
    project.manage("createsuperuser", "--noinput")

    signed_in = json.loads(checked(project.run(script=textwrap.dedent(SIGN_IN))).stdout)
    assert signed_in["status"] == 302
    package = Path(signed_in["package"])
    assert package.parent.parent.name == "site-packages"
    assert package.is_relative_to(project.python.parent.parent)
    assert signed_in["expires"]  # a persistent cookie
    max_age, age, cap = (
        int(signed_in["max_age"]),
        signed_in["remember_me_age"],
        signed_in["absolute_timeout"],
    )
    if cap is None or cap > age:
        assert max_age == age
    else:  # the absolute timeout, counted from the sign-in a moment ago, caps it
        assert cap - 2 <= max_age <= cap
    (session_name,) = redis_client.scan_iter(f"{project.prefix}:s:*")
    assert abs(redis_client.ttl(session_name) - max_age) <= 1
    user_id = signed_in["user_id"]

    summary = json.loads(project.manage("sessions", "inspect", "--format", "json"))
    assert (summary["prefix"], summary["total"], summary["authenticated"]) == (
        project.prefix,
        1,
        1,
    )
    assert summary["top_users"] == [{"user": user_id, "username": USERNAME, "sessions": 1}]

    listing = project.manage("sessions", "inspect", "--user", user_id)
    assert f"User {user_id} ({USERNAME}): 1 session" in listing

    purged = project.manage("sessions", "purge", "--all", "--yes")
    assert "Ended 1 session." in purged
    assert list(redis_client.scan_iter(f"{project.prefix}:*")) == []


def test_check_deploy_reports_no_error_of_the_engine(project: Project) -> None:
    """The engine's deploy checks reach Redis and find nothing wrong but warnings. A new
    project may fail ``check --deploy`` on Django's own checks (Django 6.1: ``mail.E001``, the
    console email backend of ``startproject``): only those errors may make it exit 1."""
    done = project.run("manage.py", "check", "--deploy")
    output = done.stdout + done.stderr
    assert "System check identified" in output, output
    ids = re.findall(r"\(([\w.]+\.[CEWID]\d{3})\)", output)
    errors = [i for i in ids if i.rsplit(".", 1)[1][0] in "CE"]
    assert [i for i in errors if i.startswith("django_redisstore.")] == [], output
    assert "django_redisstore.I011" not in ids, output  # I011: the check could not reach Redis
    assert done.returncode == (1 if errors else 0), output
