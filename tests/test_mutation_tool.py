"""mutation/mutate.py finds and applies the mutants it says, and tolerates stale targets."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import django_redisstore

ROOT = Path(__file__).resolve().parent.parent


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "mutation" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SOURCE = '''"""A module."""


def chosen(a: int, b: int) -> int:
    """Docstring: never mutated."""
    if a < b and not a:
        a += 1
        return a + 1
    return 0


def other(flag: bool = True) -> bool:
    return flag
'''


def test_every_mutant_changes_the_code_once_and_keeps_it_valid(tmp_path: Path) -> None:
    tool = load_tool()
    path = tmp_path / "sample.py"
    path.write_text(SOURCE)
    mutants, warnings = tool.find_mutants(tool.Target(str(path), ("chosen", "gone"), ()))

    assert warnings == [f"{path}: no function gone (update mutation/targets.py)"]
    assert {m.function for m in mutants} == {"chosen"}  # other() and the docstring untouched
    changes = sorted(m.change for m in mutants)
    assert changes == sorted(
        [
            "`<` -> `<=`",
            "`and` -> `or`",
            "`not` dropped",
            "`+` -> `-`",  # a += 1
            "`+` -> `-`",  # a + 1
            "`1` -> `0`",
            "`1` -> `0`",
            "`0` -> `1`",
            "returned value dropped (`return None`)",
            "returned value dropped (`return None`)",
            "statement dropped: `a += 1`",
        ]
    )
    original = ast.dump(ast.parse(SOURCE))
    mutated = {tool.mutated_source(SOURCE, m) for m in mutants}
    assert len(mutated) == len(mutants)  # each a different program
    assert all(ast.dump(ast.parse(text)) != original for text in mutated)
    assert any("if a <= b and (not a):" in text for text in mutated)
    assert any("if a < b and a:" in text for text in mutated)


def test_a_missing_module_is_reported_not_fatal() -> None:
    tool = load_tool()
    mutants, warnings = tool.find_mutants(tool.Target("django_redisstore/moved.py", (), ()))
    assert mutants == []
    assert warnings == ["django_redisstore/moved.py: no such module (update mutation/targets.py)"]


def test_the_configured_targets_exist_and_name_their_tests(tmp_path: Path) -> None:
    tool = load_tool()
    if not (ROOT / "django_redisstore").is_dir():
        # Run from the sdist against the installed wheel: the same sources, in site-packages.
        (tmp_path / "django_redisstore").symlink_to(Path(django_redisstore.__file__).parent)
        tool.ROOT = tmp_path
    for target in tool.load_targets():
        assert all((ROOT / test).is_file() for test in target.tests), target
        assert tool.find_mutants(target)[0], f"no mutants in {target.module}"
