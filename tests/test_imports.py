"""The package's import graph, read from the source: no cycle, and no output importing the whole settings.

Edges are the imports a module makes when it is loaded (top level, not inside a function, nor under
`if TYPE_CHECKING:`), between modules of the package; a package's __init__ is the node of its name.
`python tests/test_imports.py` prints the graph.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sidekiq_metrics"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else ():
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(anchor[:len(anchor) - child.level + 1] + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        imports = load_time_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        targets = {i for i in imports if i in modules and i != name}
        # Importing a.b.c loads a and a.b first.
        targets |= {".".join(t.split(".")[:k]) for t in targets for k in range(2, len(t.split(".")))} & set(modules)
        edges[name] = targets - {name} - ({"sidekiq_metrics"} if name != "sidekiq_metrics" else set())
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with each subpackage one node (`outputs` and its modules): a layer imports another layer."""
    def node(name: str) -> str:
        return ".".join(name.split(".")[:2])

    collapsed: dict[str, set[str]] = {}
    for source, targets in edges.items():
        collapsed.setdefault(node(source), set()).update(node(t) for t in targets if node(t) != node(source))
    return collapsed


def test_the_package_has_no_import_cycle_between_modules_or_layers():
    """config.py imported outputs/ for the outputs' names while two outputs imported config.Settings back."""
    assert cycles(graph()) == []
    assert cycles(packages(graph())) == []


def test_no_output_imports_the_whole_settings():
    outputs = [name for name in graph() if name.startswith("sidekiq_metrics.outputs.")]
    assert outputs and not [o for o in outputs if "sidekiq_metrics.config" in graph()[o]]


def test_config_only_assembles_the_sections_each_layer_declares():
    """Issue 27: config.py held four families of settings in three kinds of declaration; each layer now declares
    its own section with the one construct (setting.Setting), and config.py declares and parses none."""
    source = (PACKAGE / "config.py").read_text()
    assert "Setting(" not in source and "def parse_" not in source and "env.get(" not in source
    declaring = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                 if "Setting(" in path.read_text() and path.name != "setting.py"}
    assert declaring == {"redis/target.py", "sidekiq/reader.py", "loop/poll.py", "outputs/choice.py",
                         "outputs/otlp_settings.py", "autoscale/settings.py"}
    assert "OtelSetting" not in str(declaring) and not any(
        re.search(r"class \w+Setting\b", p.read_text()) for p in PACKAGE.rglob("*.py") if p.name != "setting.py")


if __name__ == "__main__":
    for module, targets in sorted(graph().items()):
        print(module, "->", ", ".join(sorted(targets)))
    sys.exit(1 if cycles(graph()) else 0)
