"""The import graph of our packages, parsed with `ast` (tests/test_layers.py checks it).

Every import counts, lazy ones inside functions included; only `if TYPE_CHECKING:` blocks are
skipped (they never run). `scan` reads a `src/` folder into packages of modules and imports;
the checks return one line per problem so a failing test names each one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

TOP = "<top>"  # the layer of a package's top-level modules (cli.py, __init__.py, ...)


@dataclass
class Import:
    """One import statement of `module`: the target module and the names taken from it."""

    module: str
    target: str
    names: tuple[str, ...]
    line: int


@dataclass
class Package:
    """A package's modules (dotted name -> file) and every import each one makes."""

    name: str
    files: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)

    def is_package(self, module: str) -> bool:
        return self.files[module].name == "__init__.py"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST):
    """Every Import/ImportFrom under `tree`, skipping the body of `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    elif isinstance(node, ast.If) and _is_type_checking(node):
        for child in node.orelse:
            yield from _imports_of(child)
    else:
        yield from import_nodes(node)


def _absolute(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module name a (possibly relative) `from ... import` statement names."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_pkg else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def scan(src: Path) -> dict[str, Package]:
    """Parse every module under `src` (a `src/` folder holding one or more packages)."""
    packages: dict[str, Package] = {}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        name = ".".join(parts)
        packages.setdefault(parts[0], Package(parts[0])).files[name] = path
    for package in packages.values():
        for module, path in package.files.items():
            tree = ast.parse(path.read_text(), str(path))
            for node in import_nodes(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        package.imports.append(Import(module, alias.name, (), node.lineno))
                else:
                    target = _absolute(module, package.is_package(module), node)
                    names = tuple(a.name for a in node.names)
                    package.imports.append(Import(module, target, names, node.lineno))
    return packages


def all_modules(packages: dict[str, Package]) -> dict[str, Path]:
    return {m: p for pkg in packages.values() for m, p in pkg.files.items()}


def resolved_targets(imp: Import, modules: dict[str, Path]) -> list[str]:
    """Our modules an import loads: `from a import b` means `a.b` where that is a module."""
    found = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in modules]
    if len(found) < len(imp.names) or not imp.names:
        target = imp.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target:
            found.append(target)
    return found


def module_graph(package: Package, modules: dict[str, Path]) -> dict[str, set[str]]:
    """Edges module -> module inside one package."""
    graph: dict[str, set[str]] = {m: set() for m in package.files}
    for imp in package.imports:
        for target in resolved_targets(imp, modules):
            if target in package.files and target != imp.module:
                graph[imp.module].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): every component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


def cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through a strongly connected component, for the error message."""
    start = component[0]
    members = set(component)
    parents: dict[str, str] = {}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if child not in parents:
                parents[child] = node
                todo.append(child)
    return component


def cycles(package: Package, modules: dict[str, Path]) -> list[str]:
    """One line per strongly connected component: a cycle through it, and every member when
    the cycle does not pass through all of them."""
    graph = module_graph(package, modules)
    found = []
    for component in strongly_connected(graph):
        cycle = cycle_in(component, graph)
        line = " -> ".join(cycle)
        if len(cycle) - 1 < len(component):
            line += f"  (one component: {', '.join(component)})"
        found.append(line)
    return found


def layer_of(module: str, package: str, layers: dict, groups: dict) -> tuple[int, str]:
    """(rank, group) of a module: its sub-package's layer, or TOP for top-level modules."""
    parts = module.split(".")
    sub = parts[1] if len(parts) > 1 else "__init__"
    group = groups.get(package, {}).get(sub, sub)
    for rank, layer in enumerate(layers[package]):
        if group in layer:
            return rank, group
    return len(layers[package]), TOP


def upward_imports(
    package: Package, modules: dict[str, Path], layers: dict, groups: dict
) -> list[str]:
    """Imports of a module in a higher layer, or of a same-layer sibling group."""
    bad = []
    for module, targets in module_graph(package, modules).items():
        rank, group = layer_of(module, package.name, layers, groups)
        for target in sorted(targets):
            t_rank, t_group = layer_of(target, package.name, layers, groups)
            if t_group != group and t_rank >= rank:
                bad.append(f"{module} ({group}) imports {target} ({t_group})")
    return bad


def foreign_imports(package: Package, allowed: dict[str, set[str]]) -> list[str]:
    """Imports of our other packages that `package` may not depend on."""
    ours = set(allowed)
    bad = []
    for imp in package.imports:
        top = imp.target.split(".")[0]
        if top in ours and top != package.name and top not in allowed[package.name]:
            bad.append(f"{imp.module}:{imp.line} imports {imp.target}")
    return bad


def public_names(path: Path) -> set[str]:
    """Names a module offers other packages: those it defines at top level (functions, classes,
    assignments, also under `if`/`try`) and those its `__all__` re-exports. A name it merely
    imports for its own use is not one of them."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in tree.body:
        for child in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(child.name)
            elif isinstance(child, ast.Assign | ast.AnnAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names.update(ast.literal_eval(node.value))
    return names


def bound_names(path: Path) -> set[str]:
    """Every name a module binds at top level: `public_names` plus what it imports."""
    names = public_names(path)
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def broken_cross_package_imports(
    package: Package, modules: dict[str, Path], ours: set[str], strict: bool = True
) -> list[str]:
    """Imports of another of our packages that name a module that does not exist, a name the
    module does not offer (`public_names`), or a private (underscore) name. `strict=False`
    (tests and benchmark scripts): any name the module binds will do, private ones too."""
    bad = []
    for imp in package.imports:
        top = imp.target.split(".")[0]
        if top == package.name or top not in ours:
            continue
        where = f"{imp.module}:{imp.line}"
        if imp.target not in modules:
            bad.append(f"{where} imports {imp.target}, which is not a module")
            continue
        defined = (public_names if strict else bound_names)(modules[imp.target])
        for name in imp.names:
            if strict and name.startswith("_"):
                bad.append(f"{where} imports the private {imp.target}.{name}")
            elif name not in defined and f"{imp.target}.{name}" not in modules:
                bad.append(f"{where} imports {imp.target}.{name}, which it does not offer")
    return bad


def script_imports(folder: Path) -> Package:
    """The imports of every script under `folder` (tests, benchmarks) as one pseudo-package."""
    scripts = Package("<scripts>")
    for path in sorted(folder.rglob("*.py")):
        where = str(path.relative_to(folder.parent))
        for node in import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [(a.name, ()) for a in node.names]
            elif node.level == 0 and node.module:
                names = [(node.module, tuple(a.name for a in node.names))]
            else:
                continue
            scripts.imports += [Import(where, m, n, node.lineno) for m, n in names]
    return scripts
