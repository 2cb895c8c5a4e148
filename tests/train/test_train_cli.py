"""`ross3d-model train` on the tiny config and demo shards, several processes through torchrun
(gloo): plain DDP against one process with twice the accumulation, ZeRO-2 against plain DDP
with the workers SIGKILLed and --resume in the middle, main-process-only outputs, per-rank
checkpoints and `ross3d-model export` of a sharded checkpoint; ZeRO-3 against plain DDP on mixed
tasks; SIGTERM to one worker: every rank checkpoints the same step, exit 0, the resume equals
the uninterrupted run (slow tier: three tests, about 3 + 2 + 1 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ross3d_model.cli import app
from ross3d_model.training.checkpointing import checkpoint_dir, list_checkpoints
from ross3d_model.training.metrics import read_metrics
from safetensors.torch import load_file
from typer.testing import CliRunner

pytestmark = pytest.mark.slow
LOSSES = ("loss", "lm", "cross_view", "bev", "grounding")
STEPS = 4


def _config(tmp_path: Path, name: str, **train) -> Path:
    cfg = {
        "model": "tiny",
        "train": {"max_steps": STEPS, "micro_batch_size": 1, "grad_accum": 2, "lr": 1e-3,
                  "save_every": 2, "warmup_ratio": 0.2, "keep_checkpoints": 0, **train},
    }  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def _train_args(config: Path, shards: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", "--config", str(config), "--shards", str(shards), "--out", str(out)]
    return [*args, *extra]


def _torchrun(args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ross3d_model.cli", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,  # its own process group: SIGKILL reaches every rank
    )  # fmt: skip


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    return out


def _records(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir / "metrics.jsonl")


def _assert_same_losses(a: list[dict], b: list[dict], rel: float) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, STEPS + 1))
    for ra, rb in zip(a, b, strict=True):
        for key in LOSSES:
            if ra[key] is None:
                assert rb[key] is None, (ra["step"], key)
            else:
                assert rb[key] == pytest.approx(ra[key], rel=rel, abs=1e-6), (ra["step"], key)
        assert rb["lr"] == pytest.approx(ra["lr"])


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _kill_after_checkpoint(proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    """SIGKILL the training workers (each in the session torchrun gave it, so killing
    torchrun's group alone leaves them running to the end), then torchrun."""
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if [s for s, _ in list_checkpoints(run_dir)] == [step]:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed"
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    for pid in workers:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def test_two_processes_plain_ddp_zero2_kill_resume_and_export(demo_data, tmp_path):
    shards, runner = demo_data["shards"], CliRunner()
    single = runner.invoke(app, _train_args(_config(tmp_path, "one", grad_accum=4), shards,
                                            tmp_path / "one"))  # fmt: skip
    assert single.exit_code == 0, single.output
    config = _config(tmp_path, "two")
    _finish(_torchrun(_train_args(config, shards, tmp_path / "ddp")))
    ddp = _records(tmp_path / "ddp")
    _assert_same_losses(_records(tmp_path / "one"), ddp, rel=1e-4)
    # mixed tasks: some step trains answers and grounding together (different ranks / micro-steps)
    assert any(r["lm"] is not None and r["grounding"] is not None for r in ddp)

    z2 = tmp_path / "zero2"
    _kill_after_checkpoint(
        _torchrun(_train_args(config, shards, z2, "--deepspeed", "zero2")), z2, 2
    )
    assert [r["step"] for r in _records(z2)][-1] < STEPS and not (z2 / "model").exists()
    out = _finish(_torchrun(_train_args(config, shards, z2, "--deepspeed", "zero2", "--resume")))
    # the resumed run trained steps 3 and 4 itself (its progress lines) and equals the
    # uninterrupted run
    assert "step 3/4" in out and "step 4/4" in out and "step 1/4" not in out
    _assert_same_losses(ddp, _records(z2), rel=5e-3)  # one row per step: rank 0 alone logs
    assert out.count("micro-batches skipped for data errors: 0") == 1  # rank 0 alone reports
    shards_of = sorted(p.name[:14] for p in (checkpoint_dir(z2, 4) / "ds").glob("*optim_states*"))
    assert shards_of == ["zero_pp_rank_0", "zero_pp_rank_1"]  # every rank saved its part

    # export of the sharded checkpoint = the end-of-training export (fp32 on CPU)
    result = runner.invoke(
        app, ["export", "--checkpoint", str(checkpoint_dir(z2, 4)), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 0, result.output
    final, exported = _weights(z2 / "model"), _weights(tmp_path / "x")
    assert final.keys() == exported.keys()
    assert all(torch.equal(final[k], exported[k]) for k in final)
    assert (tmp_path / "x" / "tokenizer").is_dir()

    # a resume with another world size is refused, naming the difference
    again = runner.invoke(app, _train_args(config, shards, tmp_path / "ddp", "--resume"))
    assert again.exit_code == 2 and "2 processes (world size), this run has 1" in again.output


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def test_two_processes_zero3_match_plain_ddp(demo_data, tmp_path):
    shards, config = demo_data["shards"], _config(tmp_path, "two")
    _finish(_torchrun(_train_args(config, shards, tmp_path / "ddp")))
    _finish(_torchrun(_train_args(config, shards, tmp_path / "z3", "--deepspeed", "zero3")))
    ddp = _records(tmp_path / "ddp")
    # mixed tasks, so the VAE runs on some micro-batches of some ranks only: ZeRO-3's per-rank
    # prefetch trace must still give matching all-gathers (engine._unhook_frozen)
    assert any(r["lm"] is not None and r["grounding"] is not None for r in ddp)
    _assert_same_losses(ddp, _records(tmp_path / "z3"), rel=1e-4)


def test_sigterm_to_one_rank_checkpoints_every_rank_and_the_requeue_resumes(demo_data, tmp_path):
    """A preemption notice reaching one worker: every rank finishes the same step, one
    checkpoint is written, the job exits 0; `--resume` then trains the remaining steps and the
    whole run equals the uninterrupted one."""
    shards, steps = demo_data["shards"], 8
    config = _config(tmp_path, "two", max_steps=steps, save_every=100)
    single = CliRunner().invoke(app, _train_args(
        _config(tmp_path, "one", max_steps=steps, save_every=100, grad_accum=4), shards,
        tmp_path / "one"))  # fmt: skip
    assert single.exit_code == 0, single.output
    run_dir = tmp_path / "two"
    proc = _torchrun(_train_args(config, shards, run_dir))
    deadline = time.time() + 900
    while time.time() < deadline and not _records_or_none(run_dir):
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) == 2 and proc.poll() is None
    os.kill(max(workers), signal.SIGTERM)  # one worker only
    out = _finish(proc)  # exit 0
    saved = [s for s, _ in list_checkpoints(run_dir)]
    assert len(saved) == 1 and saved[0] < steps, (saved, out[-2000:])
    assert "checkpoint of step" in out and not (run_dir / "model").exists()
    out = _finish(_torchrun(_train_args(config, shards, run_dir, "--resume")))
    assert f"step {saved[0] + 1}/{steps}" in out and "step 1/" not in out
    one, two = _records(tmp_path / "one"), _records(run_dir)
    assert [r["step"] for r in two] == list(range(1, steps + 1))
    for ra, rb in zip(one, two, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4) and rb["lr"] == pytest.approx(
            ra["lr"]
        )


def _records_or_none(run_dir: Path) -> list[dict] | None:
    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.is_file() and path.stat().st_size else None
