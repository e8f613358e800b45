"""Every code block of README.rst, the other top-level .rst files, bench/README.rst and docs/*.rst
runs here, each in the way its kind allows.

The files are parsed with docutils (the parser under Sphinx; Sphinx's own directives and roles
are registered as inert stubs), so a block is exactly what a reader sees: a ``code-block``
(``code``) directive, or a ``::`` literal block. Blocks that ``.. include::`` pulls in are
counted once, under the file they come from. The kinds, and what is checked for each:

python
    Compiled; its ``import`` statements are executed (a renamed module or function breaks the
    block). A block made only of imports, definitions and assignments is executed whole (the
    remember-me form and view, the async helper). Blocks with calls at module level (they use a
    ``request`` or a user that only a running site has) are not run beyond their imports.
settings
    A python block whose statements are all imports and assignments to UPPER_CASE names (``=``,
    or ``+=`` as pasted at the end of a project's settings.py, which then starts from an empty
    list). It is executed into a namespace, where ``...`` in a list stands for the project's
    own entries.
    The dotted paths of ``INSTALLED_APPS``, ``MIDDLEWARE`` and ``SESSION_ENGINE`` must import.
    The other settings are put into effect over tests/settings.py with ``override_settings``
    (a block that picks a connection, by URL, cache, Sentinels or Cluster, replaces the tests'
    one), and Django's checks for the ``sessions`` tag must report no error or warning of
    django_redisstore but those the block declares (``.. snippet: checks ID (reason)``). A
    ``LOGGING`` dict must keep Django's loggers (``"disable_existing_loggers": False``).
urls
    A python block that assigns ``urlpatterns`` (or extends it with ``+=``, from an empty list):
    executed as a URLconf of its own; every named pattern is reversed and the path resolved
    back to the same view.
command
    A ``shell`` or ``console`` block, or a ``::`` block whose lines start with ``$``: each
    command (continuation lines joined, comments dropped, ``&&`` split) is checked against what
    it would run. ``python manage.py NAME ARGS`` is parsed by the real parser of the command
    ``NAME`` (``create_parser().parse_args``, what ``call_command`` parses with), without
    running it. ``python SCRIPT.py ARGS`` is parsed by the script's own argparse parser and
    stopped there (a script without one takes no arguments and only has to exist). ``python
    -m nox -s S``: the noxfile defines ``S``. ``python -m pip install``: the requirement
    strings parse and ``-r`` files exist. ``python -m pytest``: the paths exist and ``-m``
    names a declared marker. Any other command fails the block, so that each new kind gets a
    check here.
output
    A ``::`` block that is not a command transcript (a command's output, a table): nothing to
    run. Counted.
skipped
    A block right after a ``.. snippet: skip REASON`` comment: never run, counted, and its
    reason shown by ``test_census``.

A file that cannot carry a comment yet (one another branch is rewriting) gets its markers from
``MARKS`` instead; move them into the file as ``.. snippet:`` comments when next editing it. A
block known to be wrong while another branch fixes it is listed in ``KNOWN_STALE`` with the
reason; it must fail (strict xfail), so the entry goes once the block is fixed, and an entry
that matches no block fails ``test_known_stale_entries_match``.
"""

from __future__ import annotations

import argparse
import ast
import functools
import io
import json
import re
import runpy
import shlex
import sys
import types
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core import checks
from django.core.management import get_commands, load_command_class
from django.test.utils import override_settings
from django.urls import URLPattern, URLResolver, resolve, reverse
from django.utils.module_loading import import_string
from docutils import nodes
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, directives, roles
from packaging.requirements import Requirement

from django_redisstore import checks as django_checks_module
from django_redisstore import conf

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(
    [*ROOT.glob("*.rst"), ROOT / "bench" / "README.rst", *(ROOT / "docs").glob("*.rst")]
)
CONNECTIONS = (
    "REDISSTORE_URL",
    "REDISSTORE_CACHE_ALIAS",
    "REDISSTORE_SENTINELS",
    "REDISSTORE_CLUSTER_NODES",
)
MARKER = re.compile(r"snippet:\s*(skip|checks)\b\s*(.*)", re.DOTALL)
CHECK_ID = re.compile(r"django_redisstore\.[EWI]\d{3}")

#: (file, text found in the block) -> why the block is still wrong (none now).
KNOWN_STALE: dict[tuple[str, str], str] = {}

#: (file, text found in the block) -> the marker its file would carry as a comment (none now).
MARKS: dict[tuple[str, str], tuple[str, str]] = {}


def _listed(table: dict[tuple[str, str], Any], path: Path, text: str) -> Any:
    for (name, needle), value in table.items():
        if path == ROOT / name and needle in text:
            return value
    return None


# Reading the blocks ----------------------------------------------------------------------------


class _Inert(Directive):
    """Sphinx's directives (``toctree``...), accepted and dropped: they hold no code."""

    has_content = True
    optional_arguments = 99
    final_argument_whitespace = True
    option_spec: ClassVar[dict[str, Any]] = {
        "maxdepth": directives.unchanged,
        "caption": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        return []


def _inert_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: Any = None,
    content: Any = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    return [nodes.literal(rawtext, text)], []


directives.register_directive("toctree", _Inert)
for _role in ("doc", "ref"):
    roles.register_local_role(_role, _inert_role)


def _commands(block: Block) -> list[list[str]]:
    """The commands of a block, as argument lists."""
    lines = block.text.splitlines()
    if not block.language or block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    joined: list[str] = []
    carry = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            carry += line.rstrip()[:-1] + " "
            continue
        joined.append(carry + line)
        carry = ""
    commands = []
    for line in joined:
        words = shlex.split(line, comments=True)
        while words:
            if "&&" in words:
                cut = words.index("&&")
                commands.append(words[:cut])
                words = words[cut + 1 :]
            else:
                commands.append(words)
                words = []
    return commands


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str  # "python", "shell", "console"... or "" for a ``::`` block
    text: str
    marker: tuple[str, str] | None  # ("skip" | "checks", the rest of the comment)

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        if self.marker and self.marker[0] == "skip":
            return "skipped"
        if self.language == "python":
            tree = ast.parse(self.text)
            if _assigns(tree, "urlpatterns"):
                return "urls"
            return "settings" if _is_settings(tree) else "python"
        if self.language in ("shell", "console", "bash"):
            return "command"
        if not self.language and _commands(self):
            return "command"
        return "output"


def _targets(node: ast.stmt) -> list[ast.expr] | None:
    """The names a statement assigns (``=`` or ``+=``), or None for any other statement."""
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        return [node.target]
    return None


def _extended(tree: ast.Module) -> set[str]:
    """The names a block extends with ``+=``: a pasted block adds to the project's lists."""
    return {
        node.target.id
        for node in tree.body
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name)
    }


def _assigns(tree: ast.Module, name: str) -> bool:
    return any(
        any(getattr(t, "id", "") == name for t in _targets(node) or []) for node in tree.body
    )


def _is_settings(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        targets = _targets(node)
        if targets and all(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
            continue
        return False
    return True


def _marker(block: nodes.Node) -> tuple[str, str] | None:
    previous = block.previous_sibling() if hasattr(block, "previous_sibling") else None
    if previous is None:
        parent = block.parent
        index = parent.index(block)
        previous = parent[index - 1] if index > 0 else None
    if isinstance(previous, nodes.comment):
        found = MARKER.match(previous.astext().strip())
        if found:
            return found.group(1), " ".join(found.group(2).split())
    return None


def _line_of(path: Path, text: str, near: int | None) -> int:
    """The line a block starts on. docutils gives a line at or after the block's start, or
    none for blocks nested in lists: search back from there for the block's first line."""
    first = text.strip().splitlines()[0].strip()
    lines = path.read_text(encoding="utf-8").splitlines()
    start = min(near or len(lines), len(lines))
    found = [n for n in range(start, 0, -1) if lines[n - 1].strip() == first]
    return found[0] if found else 0


def read_blocks(path: Path) -> Iterator[Block]:
    doctree = publish_doctree(
        path.read_text(encoding="utf-8"),
        source_path=str(path),
        settings_overrides={
            "report_level": 5,
            "halt_level": 5,
            "warning_stream": io.StringIO(),
            "syntax_highlight": "none",
        },
    )
    for node in doctree.findall(nodes.literal_block):
        source = Path(node.source or path).resolve()
        classes = [c for c in node.get("classes", []) if c != "code"]
        yield Block(
            path=source,
            line=_line_of(source, node.astext(), node.line),
            language=classes[0] if classes else "",
            text=node.astext(),
            marker=_marker(node) or _listed(MARKS, source, node.astext()),
        )


def all_blocks() -> list[Block]:
    seen: dict[tuple[Path, int, str], Block] = {}
    for path in FILES:
        for block in read_blocks(path):
            seen.setdefault((block.path, block.line, block.text), block)
    return sorted(seen.values(), key=lambda b: (str(b.path), b.line))


BLOCKS = all_blocks()
RUN = [b for b in BLOCKS if b.kind not in ("output", "skipped")]


def _params() -> list[Any]:
    params = []
    for block in RUN:
        reason = _listed(KNOWN_STALE, block.path, block.text)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(block, id=f"{block.name}-{block.kind}", marks=marks))
    return params


# The checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _params())
def test_block(block: Block) -> None:
    {"python": check_python, "settings": check_settings, "urls": check_urls}.get(
        block.kind, check_commands
    )(block)


def check_python(block: Block) -> None:
    tree = ast.parse(block.text)
    code = compile(tree, block.name, "exec")
    definitions = (
        ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
        ast.Assign, ast.AnnAssign,
    )  # fmt: skip
    if all(isinstance(node, definitions) for node in tree.body):
        exec(code, {"__name__": "snippet"})
        return
    imports = ast.Module(
        body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))],
        type_ignores=[],
    )
    exec(compile(imports, block.name, "exec"), {"__name__": "snippet"})


def _merged(values: dict[str, Any]) -> dict[str, Any]:
    """The block's settings as a project would have them: ``...`` dropped from lists."""
    merged = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = [v for v in value if v is not Ellipsis]
        merged[name] = value
    return merged


def check_settings(block: Block) -> None:
    namespace: dict[str, Any] = {name: [] for name in _extended(ast.parse(block.text))}
    exec(compile(block.text, block.name, "exec"), namespace)
    values = _merged({k: v for k, v in namespace.items() if k.isupper()})
    for app in values.pop("INSTALLED_APPS", []):
        import_module(app)
    for middleware in values.pop("MIDDLEWARE", []):
        import_string(middleware)
    if "SESSION_ENGINE" in values:
        import_module(values["SESSION_ENGINE"])
    if "LOGGING" in values:
        assert values["LOGGING"].get("disable_existing_loggers") is False, (
            'a LOGGING example must keep Django\'s own loggers: "disable_existing_loggers": False'
        )
    if any(name in values for name in CONNECTIONS):
        values = {name: None for name in CONNECTIONS} | values
    expected = set(CHECK_ID.findall(block.marker[1])) if block.marker else set()
    with override_settings(**values):
        found = {
            message.id
            for message in checks.run_checks(tags=["sessions"])
            if message.id
            and message.id.startswith("django_redisstore.")
            and message.level >= checks.WARNING
        }
    assert found == expected, f"checks reported {sorted(found)}, the block declares {expected}"


def _patterns(patterns: list[Any], namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _patterns(pattern.url_patterns, inner)
        elif pattern.name:
            yield namespace + pattern.name, pattern


def check_urls(block: Block) -> None:
    urlconf = types.ModuleType(f"snippet_urls_{block.line}")
    urlconf.urlpatterns = []  # what a pasted ``urlpatterns += [...]`` extends
    exec(compile(block.text, block.name, "exec"), urlconf.__dict__)
    # ``...`` in a urlpatterns list stands for the site's own patterns.
    urlconf.urlpatterns = [p for p in urlconf.urlpatterns if p is not Ellipsis]
    named = list(_patterns(urlconf.urlpatterns))
    assert named, "the URLconf names no pattern"
    for name, pattern in named:
        if pattern.pattern.regex.groups:
            continue  # takes arguments: importing and naming it is all that can be checked
        path = reverse(name, urlconf=urlconf)
        assert resolve(path, urlconf=urlconf).func == pattern.callback, name


# Commands --------------------------------------------------------------------------------------


def check_commands(block: Block) -> None:
    commands = _commands(block)
    assert commands, "a command block without a command"
    for words in commands:
        assert words[0] == "python", f"no check for {' '.join(words)!r}: add one here"
        if len(words) > 2 and words[1] == "manage.py":
            parse_management_command(words[2], words[3:])
        elif words[1] == "-m":
            {"nox": check_nox, "pip": check_pip, "pytest": check_pytest}[words[2]](words[3:])
        elif words[1].endswith(".py"):
            parse_script(ROOT / words[1], words[2:])
        else:
            pytest.fail(f"no check for {' '.join(words)!r}: add one here")


def parse_management_command(name: str, args: list[str]) -> None:
    app = get_commands().get(name)
    assert app is not None, f"manage.py has no command {name!r} with the apps of the tests"
    command = load_command_class(app, name)
    parser = command.create_parser("manage.py", name)
    try:
        parser.parse_args(args)
    except SystemExit as e:  # a subparser that exits instead of raising (older Django)
        pytest.fail(f"manage.py {name} {' '.join(args)}: argparse exited with {e.code}")


class _Parsed(Exception):
    """Raised once a script's parser accepted its arguments: the script goes no further."""


def parse_script(path: Path, args: list[str]) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} does not exist"
    source = path.read_text(encoding="utf-8")
    if "ArgumentParser" not in source:
        assert not args, f"{path.name} takes no arguments, the block passes {args}"
        return
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> Any:
        original(self, *a, **kw)
        raise _Parsed

    argv, search_path = sys.argv, sys.path[:]  # the scripts put the checkout on sys.path
    argparse.ArgumentParser.parse_args = parse_and_stop  # type: ignore[method-assign]
    sys.argv = [str(path), *args]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as e:
        pytest.fail(f"{path.name} {' '.join(args)}: argparse exited with {e.code}")
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
        sys.argv = argv
        sys.path[:] = search_path
    pytest.fail(f"{path.name} finished without parsing its arguments")


@functools.cache
def nox_sessions() -> set[str]:
    """The sessions the noxfile defines: its functions decorated with ``nox.session`` (read
    from its syntax tree, so that the test environments need no nox)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(d) for d in node.decorator_list)
    }


def check_nox(args: list[str]) -> None:
    known = nox_sessions()
    named = [args[i + 1] for i, a in enumerate(args) if a in ("-s", "--session", "--sessions")]
    for name in named:
        assert name in known, f"the noxfile has no session {name!r} ({sorted(known)})"


def check_pip(args: list[str]) -> None:
    assert args[0] == "install", args
    words = iter(args[1:])
    for word in words:
        if word in ("-r", "--requirement"):
            assert (ROOT / next(words)).is_file()
        elif not word.startswith("-"):
            Requirement(word)


def check_pytest(args: list[str]) -> None:
    words = iter(args)
    for word in words:
        if word == "-m":
            marker = next(words).split()[-1]
            pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
            assert f'"{marker}:' in pyproject, f"no pytest marker {marker!r} is declared"
        elif not word.startswith("-"):
            assert (ROOT / word.split("::")[0]).exists(), word


# The census ------------------------------------------------------------------------------------


def test_census(capsys: pytest.CaptureFixture[str]) -> None:
    """Every block has a kind; skipped ones say why. Prints the counts (pytest -s shows them)."""
    counts = Counter(block.kind for block in BLOCKS)
    assert counts["settings"] and counts["command"] and counts["python"] and counts["urls"]
    for block in BLOCKS:
        if block.kind == "skipped":
            assert block.marker and block.marker[1], f"{block.name}: a skip without a reason"
    with capsys.disabled():
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        print(f"\n{len(BLOCKS)} code blocks in {len(FILES)} files: {summary}")
        for block in BLOCKS:
            if block.kind == "skipped":
                assert block.marker is not None
                print(f"  skipped {block.name}: {block.marker[1]}")


def test_known_stale_entries_match() -> None:
    """Each entry of KNOWN_STALE and MARKS still names a block (remove it once it is gone)."""
    for (name, needle), reason in [*KNOWN_STALE.items(), *MARKS.items()]:
        assert any(block.path == ROOT / name and needle in block.text for block in BLOCKS), (
            f"the entry for {name} matches no block: {reason}"
        )


#: Claims found wrong, which must not come back (CHANGES.rst records them and is not searched).
STALE_CLAIMS = {
    r"\b[Ii]ssue \d+": "a reference to the project's private tracker, which users cannot see",
    r"round trip costs about 25": "a loopback PING measured 27-62 us (bench/README.rst)",
    r"well under a gigabyte": "leaves out the per-user index (bench/index_memory.py)",
    r"and so are expired ones": "import never reads expired sessions (importers.py)",
    r"No visitor lost a visit": "the load test's page no longer counts visits",
}
#: Files that still hold some of them while another branch fixes them (strict: an entry must go
#: once its file is clean; none now).
STALE_FILES: set[str] = set()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            path,
            id=str(path.relative_to(ROOT)),
            marks=[pytest.mark.xfail(strict=True, reason="being rewritten on other branches")]
            if str(path.relative_to(ROOT)) in STALE_FILES
            else [],
        )
        for path in FILES
        if path.name != "CHANGES.rst"
    ],
)
def test_no_stale_claims(path: Path) -> None:
    text = " ".join(path.read_text(encoding="utf-8").split())
    found = [why for claim, why in STALE_CLAIMS.items() if re.search(claim, text)]
    assert not found, found


def test_check_ids_are_documented() -> None:
    """The ids of docs/settings.rst's table are exactly those checks.py can report."""
    # The package under test: the installed one when the suite runs from the sdist.
    source = Path(django_checks_module.__file__).read_text(encoding="utf-8")
    in_code = set(CHECK_ID.findall(source))
    table = (ROOT / "docs" / "settings.rst").read_text(encoding="utf-8")
    in_docs = {"django_redisstore." + i for i in re.findall(r"^``([EWI]\d{3})``", table, re.M)}
    assert in_docs == in_code, (
        f"undocumented: {sorted(in_code - in_docs)}; documented but gone: "
        f"{sorted(in_docs - in_code)}"
    )


def test_every_setting_has_an_entry() -> None:
    """Each setting that conf.py reads has a heading of its own in docs/settings.rst (type,
    default and checks under it), and no heading names a setting that is gone."""
    read = set(conf.DEFAULTS)
    doctree = publish_doctree(
        (ROOT / "docs" / "settings.rst").read_text(encoding="utf-8"),
        settings_overrides={"report_level": 5, "warning_stream": io.StringIO()},
    )
    titles = " ".join(node.astext() for node in doctree.findall(nodes.title))
    headed = set(re.findall(r"REDISSTORE_([A-Z_]+[A-Z])", titles))
    assert headed == read, (
        f"no entry: {sorted(read - headed)}; entry for a setting conf.py does not read: "
        f"{sorted(headed - read)}"
    )


def test_figures_are_dated_from_their_results() -> None:
    """A docs page that cites a results file gives the date and time the file records."""
    for page in (ROOT / "docs").glob("*.rst"):
        text = page.read_text(encoding="utf-8")
        cited = set(re.findall(r"(readme-[\w-]+)\.(?:json|rst)", text))
        for name in cited:
            results = ROOT / "bench" / "results" / f"{name}.json"
            if not results.is_file():
                continue  # test_results_files_exist reports it
            date = json.loads(results.read_text(encoding="utf-8"))["meta"]["date"]
            day, time = date.split()[:2]
            assert day in text and time in text, f"{page.name} cites {name} without {date}"


def test_results_files_exist() -> None:
    """Every results file that the documentation cites is in the repository."""
    cited = set()
    for path in FILES:
        cited |= set(re.findall(r"bench/results/[\w.-]+\.(?:json|rst)", path.read_text("utf-8")))
    cited |= {
        "bench/results/" + name
        for path in (ROOT / "docs").glob("*.rst")
        for name in re.findall(r"``(readme-[\w.-]+\.json)``", path.read_text("utf-8"))
    }
    missing = sorted(name for name in cited if not (ROOT / name).is_file())
    assert not missing, missing
