"""The layers of lab, enforced: what docs/ARCHITECTURE.md draws is what the imports do.

Read from the source with ``ast`` (nothing is imported), so a planted upward import or cycle
fails here before it can fail anywhere else (``test_the_checks_catch_a_planted_*`` plant one).

1. Lower layers never import upper ones (LAYERS, bottom first); ``viz`` imports nothing of lab.
2. No import cycles between lab modules.
3. lab never imports Streamlit (the pages and ui/ do).
4. lab-internal imports sit at module top, where the dependency picture can be read; lazy only
   where a heavy optional third-party package would come with them (LAZY_ALLOWED, with why).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"

# Bottom first. A module may import its own layer and any layer below it, never one above.
LAYERS = ("metric", "core", "faces", "data", "measure", "learn", "runners", "views", "cli",
          "bench", "entry")
LEAF = "viz"  # the figure builders: numbers in, plotly figures out; they import nothing of lab
LAZY_ALLOWED = {
    # module that may be imported inside a function -> why
    "lab.runners.ray_runner": "imports ray, an optional extra: without a Ray address nothing "
                              "may import it (issue #18)",
}


def module_name(path: Path, root: Path = LAB) -> str:
    parts = ["lab", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "entry"
    if parts[1] == "cli":
        return "cli"
    return parts[1]


def lab_imports(tree: ast.Module, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(imported lab module, line, at module top) for every import of a lab module."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "lab" or node.module.startswith("lab.")):
            names = [node.module]
            names += [f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in modules]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name == "lab" or a.name.startswith("lab.")]
        for name in names:
            if name in modules:
                found.append((name, node.lineno, id(node) in top))
    return found


def streamlit_imports(tree: ast.Module) -> list[int]:
    return [node.lineno for node in ast.walk(tree)
            if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "streamlit"
                                                     for a in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0]
                == "streamlit")]


def read_package(root: Path = LAB) -> dict[str, ast.Module]:
    return {module_name(p, root): ast.parse(p.read_text(), str(p)) for p in root.rglob("*.py")}


def upward_imports(trees: dict[str, ast.Module]) -> list[str]:
    modules = set(trees)
    wrong = []
    for module, tree in trees.items():
        mine = layer_of(module)
        for target, line, _ in lab_imports(tree, modules):
            theirs = layer_of(target)
            if target == "lab" or theirs == mine:
                continue
            if mine == LEAF or (theirs != LEAF and (
                    mine not in LAYERS or theirs not in LAYERS
                    or LAYERS.index(theirs) > LAYERS.index(mine))):
                wrong.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    return wrong


def cycles(trees: dict[str, ast.Module]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), over every import,
    a package's __init__ included (a submodule that imports its package's __init__, which
    imports it back, is a cycle that only works in one import order)."""
    modules = set(trees)
    graph = {m: sorted({t for t, _, _ in lab_imports(tree, modules) if t != m})
             for m, tree in trees.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def lazy_imports(trees: dict[str, ast.Module]) -> list[str]:
    modules = set(trees)
    return [f"{module}:{line} imports {target} inside a function"
            for module, tree in trees.items()
            for target, line, at_top in lab_imports(tree, modules)
            if not at_top and target not in LAZY_ALLOWED and not _type_checking_only(tree, line)]


def _type_checking_only(tree: ast.Module, line: int) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and (
                node.lineno <= line <= node.end_lineno):
            return True
    return False


# --- the checks on lab as it is -------------------------------------------------------------

TREES = read_package()


def test_every_module_has_a_layer():
    assert sorted({layer_of(m) for m in TREES} - set(LAYERS) - {LEAF}) == []


def test_lower_layers_never_import_upper_ones():
    assert upward_imports(TREES) == []


def test_no_import_cycles():
    assert cycles(TREES) == []


def test_lab_never_imports_streamlit():
    assert [f"{m}:{line}" for m, tree in TREES.items() for line in streamlit_imports(tree)] == []


def test_lab_internal_imports_are_at_module_top():
    assert lazy_imports(TREES) == []


# --- the checks catch what they are for ------------------------------------------------------

def _plant(tmp_path: Path, files: dict[str, str]) -> dict[str, ast.Module]:
    for name, text in files.items():
        path = tmp_path / "lab" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_package(tmp_path / "lab")


def test_the_checks_catch_a_planted_upward_import(tmp_path):
    trees = _plant(tmp_path, {"__init__.py": "", "metric/__init__.py": "",
                              "metric/energy.py": "from lab.learn import train\n",
                              "learn/__init__.py": "", "learn/train.py": "",
                              "viz/__init__.py": "", "viz/plots.py": "import lab.core.config\n",
                              "core/__init__.py": "", "core/config.py": ""})
    assert upward_imports(trees) == [
        "lab.metric.energy:1 (metric) imports lab.learn (learn)",
        "lab.metric.energy:1 (metric) imports lab.learn.train (learn)",
        "lab.viz.plots:1 (viz) imports lab.core.config (core)",
    ]


def test_the_checks_catch_a_planted_cycle_and_a_lazy_import(tmp_path):
    trees = _plant(tmp_path, {"__init__.py": "", "learn/__init__.py": "",
                              "learn/train.py": "from lab.learn.runs import Run\n",
                              "learn/runs.py": "def f():\n    from lab.learn.train import x\n"})
    assert cycles(trees) == [["lab.learn.runs", "lab.learn.train"]]
    assert lazy_imports(trees) == ["lab.learn.runs:2 imports lab.learn.train inside a function"]


def test_the_checks_catch_a_planted_streamlit_import(tmp_path):
    page = "import os\n\ndef f():\n    import streamlit as st\n"
    trees = _plant(tmp_path, {"__init__.py": "", "views/__init__.py": "", "views/page.py": page})
    assert streamlit_imports(trees["lab.views.page"]) == [4]


@pytest.mark.parametrize("module", sorted(TREES))
def test_no_module_is_much_longer_than_one_concept(module):
    """~500 lines at most; the exceptions hold one concept each (docs/ARCHITECTURE.md)."""
    path = LAB / Path(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert len(path.read_text().splitlines()) <= LONG_MODULES.get(module, 560)


LONG_MODULES: dict[str, int] = {  # module -> its limit, each with its reason in ARCHITECTURE.md
    "lab.views.lessons": 760,  # the lessons table: data (each lesson's runs, claim, text)
}
