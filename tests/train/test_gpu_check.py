"""benchmarks/gpu_check.py's CPU-checkable parts: argument handling, every measurement on the
tiny model on CPU (smoke per sample type, generation with and without prefix reuse, a ZeRO-3
optimiser step through the trainer's engine), the JSON and the dated markdown table."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import gpu_check

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.sh"


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--device", "cpu"])  # --json is required
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--json", "x.json", "--device", "cpu", "--reps", "0"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_check.parse_args(["--json", "x.json"])  # cuda is the default
    args = gpu_check.parse_args(["--json", "x.json", "--device", "cpu", "--no-pytest"])
    assert (args.model_config, args.pytest, args.zero3_layers) == ("7b", False, 4)


def test_the_card_table_names_known_peaks():
    assert gpu_check.card(torch.device("cpu"), None) == {"name": "cpu", "peak_tflops": None}
    names = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H100 PCIe": 756.0,
             "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA H200": 989.0}  # fmt: skip
    for name, peak in names.items():
        assert next(v for k, v in gpu_check.PEAK_TFLOPS.items() if k in name) == peak


def test_the_tiny_model_on_cpu_writes_the_json_and_appends_a_dated_table(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n")
    args = ["--json", str(tmp_path / "out" / "gpu_check.json"), "--docs", str(docs),
            "--device", "cpu", "--model-config", "tiny", "--reps", "1", "--rows", "2",
            "--new-tokens", "3", "--zero3-layers", "1", "--peak-tflops", "1.0", "--no-pytest"]  # fmt: skip
    figures = gpu_check.main(args)
    visual = gpu_check.model_config("tiny").visual_tokens
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text()) == figures
    assert set(figures["smoke"]) == {"qa", "qa+cross-view", "grounding", "vision-only"}
    for f in figures["smoke"].values():
        assert f["step_s"] > 0 and f["tokens"] > visual  # the clip's visual tokens + text
        assert f["tokens_per_s"] == pytest.approx(f["tokens"] / f["step_s"], rel=0.01)
        assert f["mfu"] > 0 and f["peak_gib"] is None  # no device memory on CPU
    gen = figures["generation"]
    assert gen["prefix_reuse"]["tokens"] == gen["no_prefix_reuse"]["tokens"] <= 2 * 3
    assert figures["zero3_step"]["loss_finite"] and figures["zero3_step"]["llm_layers"] == 1
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\n## GPU check")
    assert f"{datetime.date.today().isoformat()}, cpu" in text
    assert text.count("| fwd+bwd ") == 4 and "| generation, prefix reuse |" in text
    assert "| ZeRO-3 optimiser step, 1 GPU, 1 LLM layers" in text


def test_the_shell_script_runs_the_figures_then_nothing_else():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "timeout 480" in text and "benchmarks/gpu_check.py --json" in text
    assert "--docs docs/benchmarks.md" in text


def test_pytest_runs_without_the_launcher_variables_of_the_zero3_step(monkeypatch):
    """The ZeRO-3 step leaves RANK / MASTER_PORT set in this process (its group holds the port):
    the `pytest -m gpu` subprocess must start its own."""
    seen = {}

    def fake_run(cmd, **kwargs):
        seen.update(cmd=cmd, env=kwargs["env"])
        return type("Done", (), {"returncode": 5, "stdout": "\n5 deselected in 0.1s\n"})()

    monkeypatch.setenv("MASTER_PORT", "29999")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    assert gpu_check.run_pytest() == {"returncode": 5, "summary": "5 deselected in 0.1s"}
    assert seen["cmd"][-3:] == ["-m", "gpu", "tests/"]
    assert "MASTER_PORT" not in seen["env"] and "RANK" not in seen["env"]
