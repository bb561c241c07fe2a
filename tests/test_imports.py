"""The package's import graph, read from the source: no cycle, folders layered in one order, and only the top
knowing the assembled settings.

Edges are every import a module makes between modules of the package: at load time, under `if TYPE_CHECKING:`
(a type names what it needs as surely as a call does) and inside functions (an import made late is still one);
a package's __init__ is the node of its name. `python tests/test_imports.py` prints the graph.
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


def imports_of(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every import in the module, wherever it stands (top level, TYPE_CHECKING, a function, a class)."""
    found: set[str] = set()
    for child in ast.walk(tree):
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
        imports = imports_of(ast.parse(path.read_text()), name, path.name == "__init__.py")
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


# The layers, top down, written once: a module imports only from its own layer or one below it. A layer is a
# folder (all its modules) or a module at the top of the package. docs/design.md ("The layers") says why.
LAYERS = ("__main__", "cli", "sidecar", "tools", "wiring", "config", "loop", "autoscale", "outputs", "metrics",
          "sidekiq", "redis", "heroku", "http", "catalogue", "setting", "parsing", "redact", "errors")
# The top: the modules that know the assembled settings (config.Settings). Every other one is handed its section.
TOP = ("__main__", "cli", "tools", "wiring", "config")


def layer(name: str) -> str:
    """sidekiq_metrics.redis.lease -> redis; sidekiq_metrics.config -> config."""
    return name.split(".")[1] if "." in name else name


def packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with each layer one node (`outputs` and its modules): a layer imports another layer."""
    collapsed: dict[str, set[str]] = {}
    for source, targets in edges.items():
        collapsed.setdefault(layer(source), set()).update(layer(t) for t in targets if layer(t) != layer(source))
    return collapsed


def test_the_package_has_no_import_cycle_between_modules_or_layers():
    """config.py imported outputs/ for the outputs' names while two outputs imported config.Settings back; with
    type-only imports counted, seven modules stood in one loop through config.Settings (issue 33)."""
    assert cycles(graph()) == []
    assert cycles(packages(graph())) == []


def test_every_layer_imports_only_from_the_layers_below_it():
    edges = packages(graph())
    assert set(edges) - {"sidekiq_metrics"} <= set(LAYERS), "a new folder or top module: give it its place in LAYERS"
    upward = [(source, target) for source, targets in edges.items() for target in targets
              if source in LAYERS and LAYERS.index(target) <= LAYERS.index(source)]
    assert upward == []


def test_only_the_top_knows_the_assembled_settings():
    """Every part below the top is handed its own section or plain values: none imports config, nor names
    Settings, not even for a type hint."""
    below = {name: path for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
             if layer(name) not in TOP and name != "sidekiq_metrics"}
    assert "sidekiq_metrics.loop.poll" in below and "sidekiq_metrics.redis.connection" in below
    assert [name for name in below if "sidekiq_metrics.config" in graph()[name]] == []
    assert [name for name, path in below.items() if re.search(r"\bSettings\b", path.read_text())] == []


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
    assert declaring == {"redis/target.py", "sidekiq/reader.py", "sidekiq/breakdown.py", "loop/settings.py",
                         "outputs/choice.py", "outputs/otlp_settings.py", "autoscale/settings.py"}
    assert "OtelSetting" not in str(declaring) and not any(
        re.search(r"class \w+Setting\b", p.read_text()) for p in PACKAGE.rglob("*.py") if p.name != "setting.py")


if __name__ == "__main__":
    for module, targets in sorted(graph().items()):
        print(module, "->", ", ".join(sorted(targets)))
    sys.exit(1 if cycles(graph()) else 0)
