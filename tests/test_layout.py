"""The shape of the code base the architecture issue asks for (docs/architecture.md)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

from studio.domains import ALL

DOMAIN_FILES = ("codec", "model", "data", "train", "evaluate", "generate", "render", "cli", "tab")
MAX_LINES = 400


def test_every_domain_is_a_package_with_the_same_files(repo_root):
    for domain in ALL:
        folder = repo_root / "studio" / "domains" / domain.NAME
        assert sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") == sorted(DOMAIN_FILES), domain.NAME


def test_gradio_is_imported_only_by_tabs_and_studio_ui(repo_root):
    offenders = []
    for path in (repo_root / "studio").rglob("*.py"):
        relative = path.relative_to(repo_root).as_posix()
        if relative.startswith("studio/ui/") or path.name == "tab.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [relative for name in names if name.split(".")[0] == "gradio"]
    assert offenders == []


def test_importing_the_domains_imports_no_tab_cli_or_gradio(repo_root):
    code = ("import sys, studio.domains as d; "
            "bad = [m for m in sys.modules if m == 'gradio' or (m.startswith('studio.') and m.endswith(('.tab', '.cli')))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_file_in_studio_is_over_400_lines(repo_root):
    long = {p.relative_to(repo_root).as_posix(): n for p in (repo_root / "studio").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_domain_has_a_tab_and_a_cli():
    for domain in ALL:
        assert callable(importlib.import_module(f"{domain.__name__}.tab").create_tab)
        assert callable(importlib.import_module(f"{domain.__name__}.cli").add_commands)
