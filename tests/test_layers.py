"""The import graph of every package: no cycle between modules, no sub-package importing one
above it, and packages depending on each other only downwards (issue 16).

Every import counts, lazy ones inside functions included; only `if TYPE_CHECKING:` blocks are
exempt (they never run). Layers are listed low to high; a module may import its own
sub-package and any lower layer. Names in one tuple share a layer and may not import each
other.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import (
    Import,
    Package,
    all_modules,
    broken_cross_package_imports,
    cycles,
    foreign_imports,
    scan,
    script_imports,
    upward_imports,
)

ROOT = Path(__file__).resolve().parents[1]

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


def _workspace() -> dict[str, Package]:
    packages: dict[str, Package] = {}
    for src in sorted((ROOT / "packages").glob("*/src")):
        packages |= scan(src)
    return packages


WORKSPACE = _workspace()
MODULES = all_modules(WORKSPACE)
OURS = set(ALLOWED_PACKAGES)


def test_every_package_is_scanned() -> None:
    assert set(WORKSPACE) == set(ALLOWED_PACKAGES) == set(LAYERS)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_no_import_cycle(name: str) -> None:
    found = cycles(WORKSPACE[name], MODULES)
    assert not found, "import cycles:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_no_upward_import(name: str) -> None:
    found = upward_imports(WORKSPACE[name], MODULES, LAYERS, GROUPS)
    assert not found, "imports of a higher or sibling layer:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_packages_import_only_the_packages_below_them(name: str) -> None:
    found = foreign_imports(WORKSPACE[name], ALLOWED_PACKAGES)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", sorted(ALLOWED_PACKAGES))
def test_cross_package_imports_name_public_modules_that_exist(name: str) -> None:
    found = broken_cross_package_imports(WORKSPACE[name], MODULES, OURS)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("folder", ["tests", "benchmarks"])
def test_tests_and_benchmark_scripts_import_what_exists(folder: str) -> None:
    """After a move, a stale import in a benchmark script (run by hand, not by pytest) fails here."""
    found = broken_cross_package_imports(script_imports(ROOT / folder), MODULES, OURS, strict=False)
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
    found = cycles(pkgs["pk"], all_modules(pkgs))
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
    found = upward_imports(pkgs["pk"], all_modules(pkgs), layers, {})
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
    found = broken_cross_package_imports(pkgs["ross3d_model"], all_modules(pkgs), OURS)
    assert found == [
        "ross3d_model.m:1 imports ross3d_data.core.geo.Y, which it does not offer",
        "ross3d_model.m:1 imports the private ross3d_data.core.geo._p",
        "ross3d_model.m:2 imports ross3d_data.core.nope, which is not a module",
        "ross3d_model.m:4 imports ross3d_data.core.geo.pi, which it does not offer",
    ]
    data_imports_model = Package(
        "ross3d_data", imports=[Import("ross3d_data.x", "ross3d_model.m", (), 3)]
    )
    assert foreign_imports(data_imports_model, ALLOWED_PACKAGES) == [
        "ross3d_data.x:3 imports ross3d_model.m"
    ]


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
    found = broken_cross_package_imports(
        script_imports(tmp_path / "bench"), MODULES, OURS, strict=False
    )
    assert found == [
        "bench/a.py:2 imports ross3d_model.weights.loading.BuildContext, which it does not offer",
        "bench/a.py:4 imports ross3d_model.generation, which is not a module",
    ]
