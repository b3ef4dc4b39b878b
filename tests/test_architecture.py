"""One contract, no special cases (docs/architecture.md, "Adding a domain"): shared code never names a
domain, the modules of studio/ import one another without a cycle, and each domain's package
exports exactly its contract."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from studio.domains import ALL
from studio.domains.base import OPTIONAL, REQUIRED

DOMAIN_NAMES = {domain.NAME for domain in ALL}
EXTRAS = {"speech": {"DEFAULT_FRAME_MODEL"}}  # documented in the domain's __init__ docstring


def shared_files(root: Path) -> list[Path]:
    """Every file outside studio/domains/<name>/: studio/*.py, studio/ui/, studio/domains/*.py, app.py."""
    studio = root / "studio"
    inside = [studio / "domains" / name for name in DOMAIN_NAMES]
    files = [p for p in studio.rglob("*.py") if not any(folder in p.parents for folder in inside)]
    return sorted(files) + [root / "app.py"]


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def domain_name_uses(source: str) -> list[tuple[int, str]]:
    """(line, the string) of every place the code compares with, lists or keys a dict by a domain's
    name: a string constant equal to a domain's NAME anywhere but in a docstring or an f-string's
    text (a name is data only inside its own domain). Other strings ("textual", "the text") pass."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    skipped = set(docstrings)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # the literal parts of an f-string are prose
            skipped.update(id(part) for part in node.values if isinstance(part, ast.Constant))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in DOMAIN_NAMES and id(node) not in skipped:
            found.append((node.lineno, repr(node.value)))
    return found


def test_the_finder_sees_the_ways_a_name_creeps_in():
    for code in ('if domain.NAME == "text":\n    pass', 'LANES = {"text": 1}', 'KINDS = ("text", "music")',
                 'x = "music" in names', 'f(lane="speech")', 'match d:\n    case "handwriting":\n        pass'):
        assert domain_name_uses(code), code
    for code in ('"""Text, music: the text domain."""', 'x = "textual"', 'y = f"the text {z}"', 'def f():\n    """music"""'):
        assert not domain_name_uses(code), code


def test_no_shared_code_names_a_domain(repo_root):
    offenders = {}
    for path in shared_files(repo_root):
        uses = domain_name_uses(path.read_text(encoding="utf-8"))
        if uses:
            offenders[path.relative_to(repo_root).as_posix()] = uses
    assert offenders == {}, "shared code names a domain: make it an OPTIONAL member of the contract"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the studio modules it imports}, at module level and inside functions alike. `from
    package import name` counts as importing package.name when that is a module, else the package."""
    modules = {module_name(root, p): p for p in (root / "studio").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_studio_imports_without_a_cycle(repo_root):
    """A package importing its own submodules (studio.domains -> studio.domains.text) is no cycle
    by itself; a submodule that imports back into a module that imports it is."""
    graph = import_graph(repo_root)
    # a package's __init__ importing its children, and a child importing the package's other
    # children through it, is how packages work: leave out child -> ancestor package edges
    acyclic = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    assert find_cycle(acyclic) is None


def defined_optional_members(folder: Path) -> set[str]:
    """The OPTIONAL names a domain's modules define at their top level (def, class or assignment)."""
    found = set()
    for path in folder.glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [
                target.id for target in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(target, ast.Name)]
            found.update(name for name in names if name in OPTIONAL)
    return found


@pytest.mark.parametrize("domain", ALL, ids=lambda domain: domain.NAME)
def test_each_package_exports_exactly_its_contract(domain, repo_root):
    defined = defined_optional_members(repo_root / "studio" / "domains" / domain.NAME)
    # a member defined in a module but not exported would be silently replaced by its default
    assert {name for name in defined if not hasattr(domain, name)} == set()
    contract = set(REQUIRED) | defined | EXTRAS.get(domain.NAME, set())
    # TRAINING is part of REQUIRED; its absence is test_contract's to report
    assert set(domain.__all__) | {"TRAINING"} == contract | {"TRAINING"}
