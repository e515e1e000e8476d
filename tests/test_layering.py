"""The modules of daskgmm import each other without a cycle (imports inside functions count)."""

import ast
from pathlib import Path

import daskgmm

PACKAGE = Path(daskgmm.__file__).parent


def _imported(module, node):
    """The daskgmm modules an import statement of ``module`` names (the package: ``__init__``)."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[1] for alias in node.names
                if alias.name.startswith("daskgmm.")]
    if node.level == 0:
        if node.module == "daskgmm":
            return [alias.name if (PACKAGE / f"{alias.name}.py").exists() else "__init__"
                    for alias in node.names]
        if node.module and node.module.startswith("daskgmm."):
            return [node.module.split(".")[1]]
        return []
    if node.module:
        return [node.module.split(".")[0]]
    return [alias.name if (PACKAGE / f"{alias.name}.py").exists() else "__init__"
            for alias in node.names]


def import_graph():
    """``{module: set of the daskgmm modules it imports anywhere in its code}``."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[path.stem] = {
            imported
            for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for imported in _imported(path.stem, node)
            if imported != path.stem
        }
    return graph


def find_cycle(graph):
    """A list of modules that import each other in a circle, or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return stack[stack.index(imported):] + [imported]
            if imported not in state:
                cycle = visit(imported)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "_io" in graph["cli"]  # `from ._io import load` inside a command
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_input_does_not_import_the_engine():
    graph = import_graph()
    assert not graph["_input"] & {"_em", "_init", "_checkpoint", "_mstep"}
