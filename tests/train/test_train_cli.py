"""`ross3d-model train` on the tiny config and demo shards: a real SIGKILL then --resume, and
torchrun with 2 gloo processes against 1 process with twice the accumulation (both slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ross3d_model.cli import app
from ross3d_model.training.checkpointing import list_checkpoints
from ross3d_model.training.metrics import read_metrics
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, name: str, **train) -> Path:
    cfg = {
        "model": "tiny",
        "train": {"max_steps": 6, "micro_batch_size": 1, "grad_accum": 2, "lr": 1e-3,
                  "save_every": 3, "warmup_ratio": 0.2, "shuffle_buffer": 16, **train},
    }  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def _losses(run_dir: Path) -> list[dict]:
    keys = ("step", "loss", "lm", "cross_view", "bev", "grounding", "lr")
    return [{k: r[k] for k in keys} for r in read_metrics(run_dir / "metrics.jsonl")]


def _train_args(config: Path, shards: Path, out: Path) -> list[str]:
    return ["train", "--config", str(config), "--shards", str(shards), "--output-dir", str(out)]


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(demo_data, tmp_path):
    shards, config = demo_data["shards"], _config(tmp_path, "run")
    runner = CliRunner()
    ref = runner.invoke(app, _train_args(config, shards, tmp_path / "ref"))
    assert ref.exit_code == 0, ref.output
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ross3d_model.cli", *_train_args(config, shards, killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        metrics = killed / "metrics.jsonl"
        if (
            list_checkpoints(killed)
            and metrics.exists()
            and len(metrics.read_text().splitlines()) >= 4
        ):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [s for s, _ in list_checkpoints(killed)] == [3]
    resumed = runner.invoke(app, [*_train_args(config, shards, killed), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert _losses(killed) == _losses(tmp_path / "ref")  # exact, steps 1-6


def test_torchrun_two_gloo_processes_match_one_process_with_double_accumulation(
    demo_data, tmp_path
):
    shards = demo_data["shards"]
    one = _config(tmp_path, "one", max_steps=3, grad_accum=2)
    two = _config(tmp_path, "two", max_steps=3, grad_accum=1)
    result = CliRunner().invoke(app, _train_args(one, shards, tmp_path / "one"))
    assert result.exit_code == 0, result.output
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ross3d_model.cli", *_train_args(two, shards, tmp_path / "two")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "lm", "cross_view", "bev", "grounding"):
            if ra[key] is None:
                assert rb[key] is None, key
            else:
                assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (ra["step"], key)
        assert rb["lr"] == ra["lr"]


def test_cli_deepspeed_zero3_trains_the_tiny_model_and_predict_reads_its_export(
    demo_data, tmp_path
):
    shards, config = demo_data["shards"], _config(tmp_path, "ds", max_steps=2, save_every=2)
    runner = CliRunner()
    plain = runner.invoke(app, _train_args(config, shards, tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    ds = runner.invoke(app, [*_train_args(config, shards, tmp_path / "ds"), "--deepspeed", "zero3"])
    assert ds.exit_code == 0, ds.output
    a, b = _losses(tmp_path / "plain"), _losses(tmp_path / "ds")
    assert b[0]["loss"] == pytest.approx(a[0]["loss"], rel=1e-5)  # same init, data and noise
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--checkpoint", str(tmp_path / "ds"), "--benchmark", "sqa3d",
            "--out", str(out), "--shards", str(shards), "--max-new-tokens", "2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert all("question_id" in json.loads(line) for line in out.read_text().splitlines())
