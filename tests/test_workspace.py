"""Workspace-level checks: packaging boundaries and tooling that every package relies on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY_ML = {"torch", "transformers", "deepspeed", "diffusers", "accelerate"}


def _lock_closure(package: str) -> set[str]:
    """Names of every package that `package` pulls in (without extras), read from uv.lock."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    deps = {p["name"]: [d["name"] for d in p.get("dependencies", [])] for p in lock["package"]}
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(deps[name])
    return seen - {package}


@pytest.mark.parametrize("package", ["ross3d-data", "ross3d-eval"])
def test_light_packages_do_not_pull_in_ml_frameworks(package: str) -> None:
    assert _lock_closure(package) & HEAVY_ML == set()


def test_model_package_depends_on_the_other_two() -> None:
    closure = _lock_closure("ross3d-model")
    assert {"ross3d-data", "ross3d-eval", "torch", "transformers", "diffusers"} <= closure


def test_pytest_markers_are_strict_and_declared() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in cfg["addopts"]
    declared = {m.split(":")[0] for m in cfg["markers"]}
    assert declared == {"slow", "gpu"}


def test_every_package_has_its_own_src_layout_and_entry_point() -> None:
    for name in ("data", "model", "eval"):
        meta = tomllib.loads((ROOT / f"packages/ross3d-{name}/pyproject.toml").read_text())
        assert meta["project"]["scripts"][f"ross3d-{name}"] == f"ross3d_{name}.cli:app"
        assert (ROOT / f"packages/ross3d-{name}/src/ross3d_{name}/__init__.py").is_file()
