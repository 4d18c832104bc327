"""The layers of ../shared/DESIGN.md, checked on the source: the core imports neither side,
trainers import only the core from sweeper, the sweeper reaches trainers only through the
backend registry (a dotted path, no import), no two modules import each other in a cycle,
and the sweeper side (with the backends' validation) loads no torch."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("sweeper", "trainers", "hydra_plugins")


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = project_modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a.b.c -> a.b when c is a name in a.b)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> set[str]:
    """Every project module `module` imports, at its top or inside a function."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        out |= {m for m in map(_resolve, names) if m and m != module}
    return out


GRAPH = {m: imports(m) for m in MODULES}


def layer(module: str) -> str:
    if module.startswith("sweeper.core"):
        return "core"
    return module.split(".")[0]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "core"))
def test_the_core_imports_neither_side(module):
    assert {m for m in GRAPH[module] if layer(m) != "core"} == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "trainers"))
def test_trainers_import_only_the_core_from_sweeper(module):
    assert {m for m in GRAPH[module] if layer(m) == "sweeper"} == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) in ("sweeper", "hydra_plugins")))
def test_the_sweeper_imports_no_backend(module):
    assert {m for m in GRAPH[module] if layer(m) == "trainers"} == set()


def test_no_import_cycles():
    """Depth-first search for a back edge; the cycle it closes is the message."""
    state, stack, cycles = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert cycles == []


def test_the_sweeper_side_and_backend_validation_load_no_torch():
    sweeper_side = sorted(m for m in MODULES if layer(m) in ("core", "sweeper", "hydra_plugins")
                          and m not in ("sweeper.__main__", "sweeper.lr_find"))
    code = ("import sys, runpy\n"
            f"for m in {sweeper_side!r}: __import__(m)\n"
            "from sweeper.core.contract import BACKENDS, load_backend\n"
            "for name in BACKENDS: load_backend({'trainer': {'name': name}})\n"
            "import sweeper.__main__, sweeper.lr_find  # the CLIs, without running them\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print(bad[:5]); sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_keeps_to_one_job_in_about_250_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 260, f"{MODULES[module].relative_to(ROOT)} has {lines} lines: split it by job"
