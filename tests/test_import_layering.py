"""The package's import graph, read from the source (imports inside functions included).

- No import cycle anywhere: a cycle through a function-level import works only
  as long as nobody calls that function during the other module's import, and
  it hides which module is meant to sit above which.
- A feature is a plugin like any third-party one: it imports the core and its
  own package, never another feature, nor the modules that assemble the
  application (``cli``, ``web``, ``worker``, ``server``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import retention_plugin

ROOT = Path(retention_plugin.__file__).resolve().parent
PACKAGE = "retention_plugin"
FEATURES = f"{PACKAGE}.features"
#: What assembles the application out of the plugins: no feature may import these.
ASSEMBLY = tuple(f"{PACKAGE}.{name}" for name in ("cli", "web", "worker", "server", "launch", "__main__"))



def module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``)."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, package)
    return out


def _known(name: str, modules) -> str | None:
    """The module ``name`` means: itself, or the nearest enclosing module we have (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree except what sits under ``if TYPE_CHECKING:`` (never imported at run time)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(module: str, path: Path, package: bool, modules) -> list[tuple[str, int]]:
    """(imported module of ours, line) for every import statement, at any depth of the file.

    Imports only a type checker reads (under ``if TYPE_CHECKING:``) are left out: they never run.
    """
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from pkg import mod`` imports the module ``pkg.mod`` when there is one.
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
        for target in targets:
            known = _known(target, modules)
            if known is None or known == module:
                continue
            found.append((known, node.lineno))
            # Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first.
            parts = known.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and not module.startswith(parent + "."):
                    found.append((parent, node.lineno))
    return found


def import_graph() -> dict[str, dict[str, int]]:
    modules = module_files()
    graph: dict[str, dict[str, int]] = {}
    for name, (path, package) in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in imports_of(name, path, package, modules):
            edges.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(component: list[str], graph) -> str:
    members = set(component)
    edges = [f"  {a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a].items())
             if b in members]
    return "\n".join(edges)


def feature_of(module: str) -> str | None:
    """``retention_plugin.features.loyalty.engine`` -> ``retention_plugin.features.loyalty``."""
    if not module.startswith(FEATURES + "."):
        return None
    return ".".join(module.split(".")[:3])


def test_no_module_takes_part_in_an_import_cycle():
    graph = import_graph()
    assert f"{PACKAGE}.cli" in graph and graph[f"{PACKAGE}.cli"], "the graph was not read"
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(describe(c, graph) for c in found)


def test_the_cycle_finder_sees_imports_inside_functions(tmp_path):
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert cycles(graph) == [["a", "b", "c"]]
    modules = {"retention_plugin.x": None, "retention_plugin.y": None}
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import x\ndef f():\n    from . import y\n"
    path = tmp_path / "z.py"
    path.write_text(source)
    assert imports_of("retention_plugin.z", path, False, modules) == [("retention_plugin.y", 5)]


def layering_violations(graph) -> list[str]:
    bad = []
    for module, edges in sorted(graph.items()):
        mine = feature_of(module)
        for target, line in sorted(edges.items()):
            theirs = feature_of(target)
            if mine is not None:
                if theirs is not None and theirs != mine:
                    bad.append(f"{module} imports another feature, {target} (line {line})")
                elif target in ASSEMBLY:
                    bad.append(f"{module} imports {target} (line {line}); use retention_plugin.clihelp")
            elif theirs is not None and target != FEATURES:
                bad.append(f"{module} (core) imports the feature {target} (line {line})")
    return bad


def test_features_import_only_the_core_and_their_own_package():
    bad = layering_violations(import_graph())
    assert not bad, "\n".join(bad)


def test_the_layering_rule_catches_a_feature_importing_the_cli_or_another_feature():
    graph = {
        f"{FEATURES}.delays": {f"{FEATURES}.offers": 50},
        f"{FEATURES}.recalls.commands": {f"{PACKAGE}.cli": 9, f"{FEATURES}.recalls": 3},
        f"{PACKAGE}.records": {f"{FEATURES}.loyalty": 7},
        f"{PACKAGE}.web": {f"{FEATURES}.recalls": 252},
    }
    assert layering_violations(graph) == [
        f"{FEATURES}.delays imports another feature, {FEATURES}.offers (line 50)",
        f"{FEATURES}.recalls.commands imports {PACKAGE}.cli (line 9); use retention_plugin.clihelp",
        f"{PACKAGE}.records (core) imports the feature {FEATURES}.loyalty (line 7)",
        f"{PACKAGE}.web (core) imports the feature {FEATURES}.recalls (line 252)",
    ]


def test_the_web_app_imports_no_feature_at_any_depth():
    """Pages come from their plugins (``register_routes``): nothing web.py imports, directly or through
    other modules, is a feature, so a page of a switched-off plugin is not even loaded."""
    graph = import_graph()
    seen, todo = set(), [f"{PACKAGE}.web"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(graph.get(module, ()))
    reached = sorted(m for m in seen if m == FEATURES or m.startswith(FEATURES + "."))
    assert not reached, f"web.py reaches features through imports: {reached}"
    assert f"{PACKAGE}.routes" in seen  # the walk did follow web's imports
