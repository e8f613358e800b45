"""Mutation testing: put one small bug at a time into the core modules; which do the tests miss?

Each mutant changes one spot of a module listed in ``mutation/targets.py``: a comparison
flipped (``<`` and ``<=``, ``==`` and ``!=``, ``in`` and ``not in``, ``is`` and ``is not``),
``and`` and ``or`` swapped, ``+`` and ``-`` swapped (``+=`` and ``-=`` too), a ``not``
dropped, a constant changed (``0`` and ``1``, ``True`` and ``False``), a statement dropped, a
returned value dropped (``return None``). Strings, docstrings and annotations are never touched.

The mutants run in a copy of the repository (the checkout is never modified), each against the
test files the target lists, stopping at the first failure (``pytest -x``) or at ``--timeout``.
A mutant the tests pass is a survivor: listed with its place and change at the end.

    python mutation/mutate.py --limit 40 --seed 1    # a sample of 40, the same each time
    python mutation/mutate.py --list                 # every mutant's id, nothing run
    python mutation/mutate.py --match session.py:374 # the mutants whose id contains that

``python -m nox -s mutants -- ARGS`` runs it with the test dependencies installed.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

ROOT = Path(__file__).resolve().parent.parent
Op = TypeVar("Op", bound=ast.AST)
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".nox", "__pycache__", "*.pyc", "build", "dist", "*.egg-info", "docs"
)

SWAPS: dict[type[ast.AST], type[ast.AST]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
}
SYMBOLS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.And: "and",
    ast.Or: "or",
    ast.Add: "+",
    ast.Sub: "-",
}


def _flipped(value: object) -> bool | int | None:
    """The constant a mutant puts instead of ``value``: True/False, 0/1 (None: no mutant)."""
    if isinstance(value, bool):
        return not value
    if type(value) is int and value in (0, 1):
        return 1 - value
    return None


@dataclass(frozen=True)
class Mutant:
    module: str  # path from the repository root
    index: int  # the node's position in ast.walk() order
    part: int  # which operator of a comparison (0 otherwise)
    line: int
    function: str
    change: str  # what it does, for the report

    @property
    def id(self) -> str:
        return f"{Path(self.module).name}:{self.line}:{self.index}.{self.part}"


@dataclass(frozen=True)
class Target:
    module: str
    functions: tuple[str, ...]  # empty: the whole module
    tests: tuple[str, ...]


def load_targets() -> list[Target]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from targets import TARGETS

    return [
        Target(str(t["module"]), tuple(t.get("functions", ())), tuple(t["tests"])) for t in TARGETS
    ]


# Finding the mutants --------------------------------------------------------------------------


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes never mutated: annotations, docstrings, ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()

    def skip(node: ast.AST | None) -> None:
        if node is not None:
            skipped.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                skip(arg.annotation)
            skip(node.args.vararg and node.args.vararg.annotation)
            skip(node.args.kwarg and node.args.kwarg.annotation)
        elif isinstance(node, ast.AnnAssign):
            skip(node.annotation)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip(node)
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            skip(body[0])  # a docstring
    return skipped


def _functions(tree: ast.AST) -> dict[int, str]:
    """The qualified name of the function (or class) around each node, by node id."""
    where: dict[int, str] = {}

    def visit(node: ast.AST, name: str) -> None:
        where[id(node)] = name
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, f"{name}.{child.name}" if name else child.name)
            else:
                visit(child, name)

    visit(tree, "")
    return where


def _changes(node: ast.AST) -> Iterator[tuple[int, str]]:
    """The mutations of ``node``: (part, description)."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            yield i, f"`{SYMBOLS[type(op)]}` -> `{SYMBOLS[SWAPS[type(op)]]}`"
    elif isinstance(node, ast.BoolOp | ast.BinOp | ast.AugAssign) and type(node.op) in SWAPS:
        yield 0, f"`{SYMBOLS[type(node.op)]}` -> `{SYMBOLS[SWAPS[type(node.op)]]}`"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield 0, "`not` dropped"
    elif isinstance(node, ast.Constant) and _flipped(node.value) is not None:
        yield 0, f"`{node.value!r}` -> `{_flipped(node.value)!r}`"
    elif (
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
    ):
        yield 0, "returned value dropped (`return None`)"
    if isinstance(node, ast.Expr | ast.Assign | ast.AugAssign) or (
        isinstance(node, ast.AnnAssign) and node.value is not None
    ):
        yield 1, f"statement dropped: `{ast.unparse(node)[:50]}`"


def find_mutants(target: Target) -> tuple[list[Mutant], list[str]]:
    """The mutants of ``target``, and warnings (a missing module or function name)."""
    path = ROOT / target.module
    if not path.exists():
        return [], [f"{target.module}: no such module (update mutation/targets.py)"]
    tree = ast.parse(path.read_text())
    skipped, where = _skipped_nodes(tree), _functions(tree)
    known = set(where.values())
    warnings = [
        f"{target.module}: no function {name} (update mutation/targets.py)"
        for name in target.functions
        if name not in known
    ]

    def wanted(function: str) -> bool:
        if not target.functions:
            return True
        return any(function == f or function.startswith(f + ".") for f in target.functions)

    mutants = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skipped or not hasattr(node, "lineno"):
            continue
        function = where[id(node)]
        if not wanted(function):
            continue
        for part, change in _changes(node):
            mutants.append(Mutant(target.module, index, part, node.lineno, function, change))
    return mutants, warnings


# Applying one ---------------------------------------------------------------------------------


def mutated_source(source: str, mutant: Mutant) -> str:
    tree = ast.parse(source)
    node = list(ast.walk(tree))[mutant.index]
    replacement: ast.AST | None = None
    is_statement_drop = mutant.change.startswith("statement dropped")
    if is_statement_drop:
        replacement = ast.Pass()
    elif isinstance(node, ast.Compare):
        node.ops[mutant.part] = _swapped(node.ops[mutant.part])
    elif isinstance(node, ast.BoolOp | ast.BinOp | ast.AugAssign):
        node.op = _swapped(node.op)
    elif isinstance(node, ast.UnaryOp):
        replacement = node.operand
    elif isinstance(node, ast.Constant):
        node.value = _flipped(node.value)
    elif isinstance(node, ast.Return):
        node.value = ast.Constant(None)
    if replacement is not None:
        _replace(tree, node, replacement)
    return ast.unparse(ast.fix_missing_locations(tree))


def _swapped(op: Op) -> Op:
    return cast(Op, SWAPS[type(op)]())


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(item is old for item in value):
                value[[item is old for item in value].index(True)] = new
                return
    raise LookupError("node not found")


def sample(mutants: list[Mutant], limit: int, rng: random.Random) -> list[Mutant]:
    """About ``limit`` mutants, each module's share in proportion to its count, at least one."""
    by_module: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_module.setdefault(m.module, []).append(m)
    chosen: list[Mutant] = []
    for group in by_module.values():
        chosen += rng.sample(group, max(1, round(limit * len(group) / len(mutants))))
    return chosen


# Running the tests ----------------------------------------------------------------------------


def run_tests(sandbox: Path, tests: tuple[str, ...], timeout: float) -> str:
    """'passed', 'failed' or 'timeout': the target's tests, stopping at the first failure."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:randomly"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with subprocess.Popen(
        [*command, *tests],
        cwd=sandbox,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a timeout ends its Redis servers too
    ) as process:
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _end_group(process)
            return "timeout"
        except BaseException:  # Ctrl-C or SIGTERM: end the tests and their servers too
            _end_group(process)
            raise
    return "passed" if code == 0 else "failed"


def _end_group(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="run a random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0, help="of the sample (default 0)")
    parser.add_argument(
        "--match", action="append", help="only the mutants whose id contains this (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--list", action="store_true", help="list the mutants; run nothing")
    options = parser.parse_args(argv)

    targets = load_targets()
    mutants: list[Mutant] = []
    for target in targets:
        found, warnings = find_mutants(target)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        mutants += found
    if options.match:
        mutants = [m for m in mutants if any(text in m.id for text in options.match)]
    total = len(mutants)
    if options.limit is not None and options.limit < total:
        mutants = sample(mutants, options.limit, random.Random(options.seed))
    mutants.sort(key=lambda m: (m.module, m.line, m.index, m.part))
    if options.list:
        for m in mutants:
            print(f"{m.id}  {m.module}:{m.line}  {m.function or '<module>'}  {m.change}")
        print(f"{len(mutants)} of {total} mutants")
        return 0

    tests_of = {t.module: t.tests for t in targets}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    sandbox = Path(tempfile.mkdtemp(prefix="redisstore-mutants-"))
    try:
        shutil.copytree(ROOT, sandbox, ignore=COPY_IGNORE, dirs_exist_ok=True)
        return _run(mutants, total, tests_of, sandbox, options.timeout)
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def _run(
    mutants: list[Mutant],
    total: int,
    tests_of: dict[str, tuple[str, ...]],
    sandbox: Path,
    timeout: float,
) -> int:
    say: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
    for module in sorted({m.module for m in mutants}):
        say(f"baseline: {module}'s tests, unmutated ...")
        if run_tests(sandbox, tests_of[module], timeout) != "passed":
            say(f"the tests of {module} fail without any mutant: fix them first")
            return 2
    outcomes: dict[str, list[Mutant]] = {"failed": [], "timeout": [], "passed": []}
    started = time.monotonic()
    for n, mutant in enumerate(mutants, 1):
        path = sandbox / mutant.module
        original = path.read_text()
        path.write_text(mutated_source(original, mutant))
        try:
            began = time.monotonic()
            outcome = run_tests(sandbox, tests_of[mutant.module], timeout)
        finally:
            path.write_text(original)
        outcomes[outcome].append(mutant)
        verdict = {"failed": "killed", "timeout": "killed (timeout)", "passed": "SURVIVED"}
        say(
            f"[{n}/{len(mutants)}] {verdict[outcome]:16} {mutant.module}:{mutant.line} "
            f"{mutant.change} ({time.monotonic() - began:.0f} s)"
        )
    survivors = outcomes["passed"]
    say(
        f"\n{len(mutants)} mutants run (of {total}) in {time.monotonic() - started:.0f} s: "
        f"{len(outcomes['failed'])} killed, {len(outcomes['timeout'])} timed out, "
        f"{len(survivors)} survived"
    )
    for m in survivors:
        say(f"  survived {m.module}:{m.line} [{m.id}] in {m.function or '<module>'}: {m.change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
