"""Every declared dependency is used, the lock holds it, and README's "Dependencies" section says
what it does (issue: no dependency that no source imports)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ross3d-benchmarks", "ross3d-data", "ross3d-model", "ross3d-eval")
NEVER_DECLARED = ("pytorch3d",)  # no 3.11 wheel or sdist on PyPI (README "Dependencies")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def declared(package: str) -> set[str]:
    """Runtime requirements of a workspace package, extras included."""
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r) for r in reqs}


def imported_modules(src: Path) -> set[str]:
    """Top-level module names imported anywhere in ``src`` (lazy imports in functions too)."""
    names: set[str] = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def imported_distributions(package: str) -> set[str]:
    src = ROOT / "packages" / package / "src"
    to_dist = importlib.metadata.packages_distributions()
    dists: set[str] = set()
    for module in imported_modules(src):
        found = to_dist.get(module, [module.replace("_", "-")])  # workspace packages: ross3d_x
        dists.update(d.lower() for d in found)
    return dists


def _readme_dependencies() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Dependencies\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Dependencies' section"
    return match.group(1)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_declared_dependency_is_imported_by_the_package(package):
    unused = declared(package) - imported_distributions(package)
    assert not unused, f"{package} declares {sorted(unused)} but no source file imports them"


def test_declared_dependencies_are_locked_and_named_in_the_readme():
    lock = {p["name"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    section = _readme_dependencies()
    for package in PACKAGES:
        for dep in declared(package):
            assert dep in lock, f"{package}: {dep} is not in uv.lock (run `uv lock`)"
            if not dep.startswith("ross3d-"):
                assert f"`{dep}`" in section, f"README Dependencies does not name `{dep}`"


def test_libraries_we_do_not_depend_on_are_never_declared_and_say_why():
    lock = {p["name"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    section = _readme_dependencies()
    for name in NEVER_DECLARED:
        assert name not in lock and all(name not in declared(p) for p in PACKAGES)
        assert f"`{name}`" in section, f"README Dependencies does not say why `{name}` is absent"


def test_the_import_scan_sees_lazy_imports(tmp_path):
    (tmp_path / "m.py").write_text(
        "import a.b\nfrom c import d\nfrom . import e\n\ndef f():\n    import g\n"
    )
    assert imported_modules(tmp_path) == {"a", "c", "g"}
