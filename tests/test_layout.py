"""The project's shape: two packages with one direction, no import cycle, lessons that say what they
teach, and a repository a classroom can clone."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

import pytest

from fer_utils.data import repo_root

ROOT = repo_root()
LESSONS, TOOLS = ROOT / "fer_utils", ROOT / "fer_study"
#: No tracked file may be larger than this (a classroom clones every byte, and history keeps it forever).
LARGEST_FILE_MB = 20


def imports_of(path: Path, package: str) -> set[str]:
    """The modules of the study's two packages that ``path`` imports, anywhere in it (also inside
    functions), as dotted names; relative imports resolved against ``package``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
            elif node.module:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("fer_utils", "fer_study")}


def module_graph(folder: Path) -> dict[str, set[str]]:
    """Each module of the package in ``folder`` -> the other modules of that package it imports."""
    modules = {p.stem: p for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        parts = {m.split(".")[1] for m in imports_of(path, folder.name)
                 if m.startswith(f"{folder.name}.") and len(m.split(".")) > 1}
        graph[name] = {m for m in parts if m in modules and m != name}
    return graph


def test_the_lessons_import_nothing_from_the_tools():
    for path in sorted(LESSONS.glob("*.py")):
        tools = sorted(m for m in imports_of(path, "fer_utils") if m.startswith("fer_study"))
        assert not tools, f"fer_utils/{path.name} imports {tools}: the tools sit on top of the lessons, not under"


def test_the_notebooks_import_only_the_lessons():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "fer_study" not in code, f"{path.name} imports the tools; a notebook reads only fer_utils"


def test_every_name_the_benchmarks_import_from_the_packages_exists():
    """The scripts in benchmarks/ run by hand, not in CI: a module split must not leave them importing a name
    that moved (benchmarks/input_scaling.py imported scaling_comparison from a module that no longer had it)."""
    import importlib

    missing = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("fer_utils", "fer_study"):
                module = importlib.import_module(node.module)
                missing += [f"{path.name}: {node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
    assert not missing, missing


@pytest.mark.parametrize("folder", [LESSONS, TOOLS], ids=["fer_utils", "fer_study"])
def test_no_import_cycle_within_a_package(folder):
    graph = module_graph(folder)

    def reaches(start: str, goal: str, seen: frozenset[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[start])

    cycles = sorted(name for name in graph if reaches(name, name, frozenset({name})))
    assert not cycles, f"{folder.name}: import cycle through {', '.join(cycles)}"


def test_every_module_a_notebook_imports_opens_with_its_lesson():
    used = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        used |= set(re.findall(r"from fer_utils\.(\w+) import", text))
        used |= set(re.findall(r"from fer_utils import (\w+)", text))
    assert {"data", "model", "train", "notebook"} <= used
    for name in sorted(used):
        doc = ast.get_docstring(ast.parse((LESSONS / f"{name}.py").read_text())) or ""
        assert "*The lesson.*" in doc, f"fer_utils/{name}.py: its docstring should open with what it teaches"


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_is_too_large_for_a_classroom_clone():
    large = [f"{p.relative_to(ROOT)} ({p.stat().st_size / 2**20:.1f} MiB)" for p in tracked_files()
             if p.exists() and p.stat().st_size > LARGEST_FILE_MB * 2**20]
    assert not large, f"tracked files over {LARGEST_FILE_MB} MiB: {', '.join(large)}"


def test_every_shipped_model_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    models = sorted(p for p in tracked_files() if p.suffix == ".keras")
    assert models, "the study ships its baseline model (models/baseline.keras)"
    for path in models:
        rel = path.relative_to(ROOT).as_posix()
        assert rel in readme, f"{rel} is tracked but the README does not list it"
