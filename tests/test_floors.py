"""The floors of docs/DESIGN.md: dnnlib < volumes < metrics < training < generation, front ends on top.

No module imports (at module level or inside a function) a package on a higher floor, and no two modules import
each other, directly or in a longer circle. The import graph is read from the source with ast, so an import that
only runs on some path counts too.
"""

import ast
import os

import pytest

from tests.utils import REPO

FLOORS = ("dnnlib", "volumes", "metrics", "training", "generation")


def _module_name(path, root):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def _imported_names(tree, module, is_package):
    """Every dotted name a module imports, relative imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def import_graph(root=REPO):
    """{module: set of dotted names it imports} for every module of the floor packages."""
    graph = {}
    for floor in FLOORS:
        for folder, _, files in os.walk(os.path.join(root, floor)):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                with open(path) as f:
                    tree = ast.parse(f.read(), filename=path)
                module = _module_name(path, root)
                graph[module] = set(_imported_names(tree, module, name == "__init__.py"))
    return graph


def upward_imports(graph):
    """[(module, imported name)] where the imported name lies on a higher floor than the module."""
    found = []
    for module, names in graph.items():
        floor = FLOORS.index(module.split(".")[0])
        for name in names:
            top = name.split(".")[0]
            if top in FLOORS and FLOORS.index(top) > floor:
                found.append((module, name))
    return sorted(found)


def module_cycles(graph):
    """Modules that reach themselves through imports of modules (not of their packages' __init__ alone)."""
    def target(name):
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            candidate = ".".join(parts[:k])
            if candidate in graph and candidate not in FLOORS:
                return candidate
        return None

    edges = {m: {t for t in map(target, names) if t and t != m} for m, names in graph.items()}

    def reaches_itself(start):
        seen, todo = set(), list(edges[start])
        while todo:
            m = todo.pop()
            if m == start:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(edges.get(m, ()))
        return False

    return sorted(m for m in edges if reaches_itself(m))


def test_no_import_runs_from_a_lower_floor_to_a_higher_one():
    assert upward_imports(import_graph()) == []


def test_no_modules_import_each_other():
    assert module_cycles(import_graph()) == []


# (files: {path: source}, upward imports the check must find, modules in a circle)
CHECK_CASES = [
    ({"volumes/a.py": "def f():\n    from training import networks\n"}, [("volumes.a", "training.networks")], []),
    ({"metrics/a.py": "import generation.runner\n"}, [("metrics.a", "generation.runner")], []),
    ({"training/a.py": "from metrics import kid\nfrom dnnlib import cli\n"}, [], []),
    ({"volumes/a.py": "from volumes import b\n", "volumes/b.py": "from volumes.a import x\n"}, [],
     ["volumes.a", "volumes.b"]),
    ({"volumes/sub/a.py": "from .. import b\n", "volumes/b.py": "def f():\n    from volumes.sub import a\n"}, [],
     ["volumes.b", "volumes.sub.a"]),
]


@pytest.mark.parametrize("files, upward, circle", CHECK_CASES, ids=["inside-function", "module-level", "downward",
                                                                     "two-modules", "relative-import"])
def test_the_check_finds_what_it_should(tmp_path, files, upward, circle):
    for floor in FLOORS:
        (tmp_path / floor).mkdir()
    for path, source in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(source)
    graph = import_graph(str(tmp_path))
    assert upward_imports(graph) == upward
    assert module_cycles(graph) == circle
