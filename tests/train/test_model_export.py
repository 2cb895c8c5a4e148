"""`ross3d-model export` streams a checkpoint's tensors into the model-folder layout without
building the model: the same folder as the end-of-training export, sharded or not, bf16
parameters with float32 buffers kept float32 for a bf16 DeepSpeed run, and no pretrained
source opened."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from ross3d_model.cli import app
from ross3d_model.training.checkpointing import RUN_CONFIG_FILE, checkpoint_dir
from ross3d_model.training.export import export_checkpoint
from ross3d_model.weights.build import from_pretrained
from safetensors.torch import load_file
from typer.testing import CliRunner

POS_TABLES = ("reconstructor.denoiser.branches.view.pos_embed",
              "reconstructor.denoiser.branches.bev.pos_embed")  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(demo_data, tmp_path_factory):
    """A 2-step plain tiny run: its step-2 checkpoint and its end-of-training export."""
    out = tmp_path_factory.mktemp("export") / "run"
    config = out.parent / "run.json"
    config.write_text(json.dumps({"model": "tiny", "train": {
        "max_steps": 2, "micro_batch_size": 1, "grad_accum": 1, "save_every": 2}}))  # fmt: skip
    args = ["train", "--config", str(config), "--shards", str(demo_data["shards"]),
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _weights(folder) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def test_export_streams_the_end_of_training_folder_sharded_or_not(run_dir, tmp_path):
    final = _weights(run_dir / "model")
    whole = export_checkpoint(checkpoint_dir(run_dir, 2), tmp_path / "whole")
    assert sorted(p.name for p in whole.glob("*.safetensors")) == ["model.safetensors"]
    got = _weights(whole)
    assert got.keys() == final.keys() and all(torch.equal(got[k], final[k]) for k in final)
    assert json.loads((whole / "config.json").read_text()) == json.loads(
        (run_dir / "model" / "config.json").read_text()
    )
    assert (whole / "tokenizer").is_dir()
    sharded = export_checkpoint(checkpoint_dir(run_dir, 2), tmp_path / "sharded", 300_000)
    files = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(files) > 2 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(final) and set(index["weight_map"].values()) == set(
        files
    )
    model = from_pretrained(sharded)  # the loader predict uses reads it whole
    state = model.state_dict()
    assert all(torch.equal(state[k], final[k]) for k in final)


def test_a_bf16_deepspeed_run_exports_bf16_parameters_and_float32_buffers(run_dir, tmp_path):
    """A run folder whose run config says DeepSpeed + bf16 and whose model config names a
    pretrained denoiser that does not exist: nothing is built or opened, parameters are cast
    to bf16, the position tables stay float32 (they used to be rounded to bf16)."""
    fake = tmp_path / "run"
    shutil.copytree(checkpoint_dir(run_dir, 2), checkpoint_dir(fake, 2))
    model_cfg = tmp_path / "model.json"
    model_cfg.write_text(json.dumps({"base": "tiny", "reconstruction": {
        "pretrained_denoiser": str(tmp_path / "absent.bin")}}))  # fmt: skip
    run = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    run["model"], run["train"]["deepspeed"], run["train"]["bf16"] = str(model_cfg), "zero2", True
    (fake / RUN_CONFIG_FILE).write_text(json.dumps(run))
    folder = export_checkpoint(checkpoint_dir(fake, 2), tmp_path / "x")
    got, fp32 = _weights(folder), _weights(run_dir / "model")
    for name in POS_TABLES:
        assert got[name].dtype == torch.float32 and torch.equal(got[name], fp32[name])
    params = {k for k in got if k not in POS_TABLES}
    assert {got[k].dtype for k in params if fp32[k].is_floating_point()} == {torch.bfloat16}
    assert all(torch.equal(got[k], fp32[k].to(got[k].dtype)) for k in params)
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"


def test_export_refuses_an_incomplete_checkpoint_and_a_foreign_one(run_dir, tmp_path):
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        export_checkpoint(tmp_path / "missing", tmp_path / "x")
    fake = tmp_path / "run"
    shutil.copytree(checkpoint_dir(run_dir, 2), checkpoint_dir(fake, 2))
    run = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    model_cfg = tmp_path / "model.json"
    model_cfg.write_text(json.dumps({"base": "tiny", "objective": {}, "llm": {"num_layers": 1}}))
    run["model"] = str(model_cfg)
    (fake / RUN_CONFIG_FILE).write_text(json.dumps(run))
    with pytest.raises(ValueError, match=r"does not match the run's model .*unexpected"):
        export_checkpoint(checkpoint_dir(fake, 2), tmp_path / "y")


def test_a_zero2_checkpoint_streams_its_fp32_master_weights(demo_data, tmp_path):
    """DeepSpeed's partitions merged per tensor (zero_to_fp32's lazy mode) give the end-of-
    training export (fp32 run: the same values)."""
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": "tiny", "train": {
        "max_steps": 1, "micro_batch_size": 1, "grad_accum": 1, "deepspeed": "zero2"}}))  # fmt: skip
    args = ["train", "--config", str(config), "--shards", str(demo_data["shards"]),
            "--out", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = export_checkpoint(checkpoint_dir(tmp_path / "run", 1), tmp_path / "x", 300_000)
    final, got = _weights(tmp_path / "run" / "model"), _weights(folder)
    assert got.keys() == final.keys() and all(torch.equal(got[k], final[k]) for k in final)
