"""The import graph of every package: no cycle between modules, no sub-package importing one
above it, and packages depending on each other only downwards (issue 16).

Every import counts, lazy ones inside functions included; only `if TYPE_CHECKING:` blocks are
exempt (they never run). Layers are listed low to high; a module may import its own
sub-package and any lower layer. Names in one tuple share a layer and may not import each
other.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = "<top>"  # the layer of a package's top-level modules (cli.py, __init__.py, ...)

# Per package: layers low to high. A layer is a tuple of sub-package names (or, for eval, of
# top-level module names grouped together); anything not named is TOP.
LAYERS: dict[str, list[tuple[str, ...]]] = {
    "ross3d_benchmarks": [],
    "ross3d_data": [
        ("core",),
        ("scannet",),
        ("datasets",),
        ("views", "bev"),
        ("instructions",),
        ("shards",),
        ("cache",),
        ("synthetic",),
    ],
    "ross3d_model": [
        ("configuration",),
        ("modeling",),
        ("inputs", "weights"),
        ("inference", "training"),
    ],
    "ross3d_eval": [
        ("base",),
        ("scorers",),
        ("harness",),
    ],
}
# ross3d_eval's foundation is a set of flat modules; they form one group, "base".
GROUPS = {
    "ross3d_eval": {
        "errors": "base",
        "text": "base",
        "boxes": "base",
        "inputs": "base",
        "captions": "base",
        "result": "base",
    }
}
# Which of our packages each package may import.
ALLOWED_PACKAGES = {
    "ross3d_benchmarks": set(),
    "ross3d_data": {"ross3d_benchmarks"},
    "ross3d_eval": {"ross3d_benchmarks"},
    "ross3d_model": {"ross3d_benchmarks", "ross3d_data", "ross3d_eval"},
}


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


def _import_nodes(tree: ast.AST):
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
        yield from _import_nodes(node)


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
            for node in _import_nodes(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        package.imports.append(Import(module, alias.name, (), node.lineno))
                else:
                    target = _absolute(module, package.is_package(module), node)
                    names = tuple(a.name for a in node.names)
                    package.imports.append(Import(module, target, names, node.lineno))
    return packages


def _all_modules(packages: dict[str, Package]) -> dict[str, Path]:
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
    package: Package, modules: dict[str, Path], layers: dict = LAYERS, groups: dict = GROUPS
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


def foreign_imports(package: Package, allowed: dict = ALLOWED_PACKAGES) -> list[str]:
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
    package: Package, modules: dict[str, Path], strict: bool = True
) -> list[str]:
    """Imports of another of our packages that name a module that does not exist, a name the
    module does not offer (`public_names`), or a private (underscore) name. `strict=False`
    (tests and benchmark scripts): any name the module binds will do, private ones too."""
    bad = []
    for imp in package.imports:
        top = imp.target.split(".")[0]
        if top == package.name or top not in ALLOWED_PACKAGES:
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
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [(a.name, ()) for a in node.names]
            elif node.level == 0 and node.module:
                names = [(node.module, tuple(a.name for a in node.names))]
            else:
                continue
            scripts.imports += [Import(where, m, n, node.lineno) for m, n in names]
    return scripts


def _workspace() -> dict[str, Package]:
    packages: dict[str, Package] = {}
    for src in sorted((ROOT / "packages").glob("*/src")):
        packages |= scan(src)
    return packages


WORKSPACE = _workspace()
MODULES = _all_modules(WORKSPACE)


def test_every_package_is_scanned() -> None:
    assert set(WORKSPACE) == set(ALLOWED_PACKAGES) == set(LAYERS)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_no_import_cycle(name: str) -> None:
    found = cycles(WORKSPACE[name], MODULES)
    assert not found, "import cycles:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_no_upward_import(name: str) -> None:
    found = upward_imports(WORKSPACE[name], MODULES)
    assert not found, "imports of a higher or sibling layer:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_packages_import_only_the_packages_below_them(name: str) -> None:
    found = foreign_imports(WORKSPACE[name])
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_cross_package_imports_name_public_modules_that_exist(name: str) -> None:
    found = broken_cross_package_imports(WORKSPACE[name], MODULES)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("folder", ["tests", "benchmarks"])
def test_tests_and_benchmark_scripts_import_what_exists(folder: str) -> None:
    """After a move, a stale import in a benchmark script (run by hand, not by pytest) fails here."""
    found = broken_cross_package_imports(script_imports(ROOT / folder), MODULES, strict=False)
    assert not found, "\n".join(found)


def test_every_named_layer_exists() -> None:
    for name, layers in LAYERS.items():
        subs = {m.split(".")[1] for m in WORKSPACE[name].files if "." in m}
        subs |= set(GROUPS.get(name, {}).values())
        for layer in layers:
            assert set(layer) <= subs, f"{name}: layer {layer} names a missing sub-package"


# --- the checker itself, on planted packages -------------------------------------------------


def _plant(tmp_path: Path, files: dict[str, str]) -> dict[str, Package]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return scan(tmp_path)


def test_checker_reports_a_lazy_cycle_and_ignores_type_checking(tmp_path) -> None:
    pkgs = _plant(
        tmp_path,
        {
            "pk/__init__.py": "",
            "pk/low/__init__.py": "",
            "pk/low/a.py": "from pk.low.b import x\n",
            "pk/low/b.py": "x = 1\n\ndef f():\n    from .c import y\n",
            "pk/low/c.py": "from . import a\ny = 2\n",
            "pk/low/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pk.low.e\n",
            "pk/low/e.py": "import pk.low.d\n",
        },
    )
    found = cycles(pkgs["pk"], _all_modules(pkgs))
    assert found == ["pk.low.a -> pk.low.b -> pk.low.c -> pk.low.a"]


def test_checker_reports_upward_and_sibling_imports(tmp_path) -> None:
    pkgs = _plant(
        tmp_path,
        {
            "pk/__init__.py": "",
            "pk/cli.py": "from pk.high import h\n",
            "pk/low/__init__.py": "",
            "pk/low/l.py": "def f():\n    from pk.high.h import g\n",
            "pk/mid1/__init__.py": "",
            "pk/mid1/m.py": "import pk.mid2.n\nfrom pk.low import l\n",
            "pk/mid2/__init__.py": "",
            "pk/mid2/n.py": "",
            "pk/high/__init__.py": "",
            "pk/high/h.py": "from pk.low.l import f\nfrom pk import cli\n",
        },
    )
    layers = {"pk": [("low",), ("mid1", "mid2"), ("high",)]}
    found = upward_imports(pkgs["pk"], _all_modules(pkgs), layers, {})
    assert found == [
        "pk.high.h (high) imports pk.cli (<top>)",
        "pk.low.l (low) imports pk.high.h (high)",
        "pk.mid1.m (mid1) imports pk.mid2.n (mid2)",
    ]


def test_checker_reports_missing_and_private_cross_package_names(tmp_path) -> None:
    pkgs = _plant(
        tmp_path,
        {
            "ross3d_data/__init__.py": "",
            "ross3d_data/core/__init__.py": "",
            "ross3d_data/core/geo.py": "from math import pi\nX = 1\n\ndef _p():\n    pass\n",
            "ross3d_data/core/api.py": "from ross3d_data.core.geo import X\n__all__ = ['X']\n",
            "ross3d_model/__init__.py": "",
            "ross3d_model/m.py": (
                "from ross3d_data.core.geo import X, Y, _p\nimport ross3d_data.core.nope\n"
                "from ross3d_data.core import geo\nfrom ross3d_data.core.geo import pi\n"
                "from ross3d_data.core.api import X\n"
            ),
        },
    )
    found = broken_cross_package_imports(pkgs["ross3d_model"], _all_modules(pkgs))
    assert found == [
        "ross3d_model.m:1 imports ross3d_data.core.geo.Y, which it does not offer",
        "ross3d_model.m:1 imports the private ross3d_data.core.geo._p",
        "ross3d_model.m:2 imports ross3d_data.core.nope, which is not a module",
        "ross3d_model.m:4 imports ross3d_data.core.geo.pi, which it does not offer",
    ]
    data_imports_model = Package(
        "ross3d_data", imports=[Import("ross3d_data.x", "ross3d_model.m", (), 3)]
    )
    assert foreign_imports(data_imports_model) == ["ross3d_data.x:3 imports ross3d_model.m"]


def test_checker_reports_stale_imports_in_scripts(tmp_path) -> None:
    _plant(
        tmp_path,
        {
            "bench/a.py": (
                "from ross3d_eval.harness import score\n"
                "from ross3d_model.weights.loading import BuildContext\n"
                "def f():\n    import ross3d_model.generation\n"
            ),
        },
    )
    found = broken_cross_package_imports(script_imports(tmp_path / "bench"), MODULES, strict=False)
    assert found == [
        "bench/a.py:2 imports ross3d_model.weights.loading.BuildContext, which it does not offer",
        "bench/a.py:4 imports ross3d_model.generation, which is not a module",
    ]
