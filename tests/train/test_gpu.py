"""A real DeepSpeed step on CUDA (skipped without a GPU)."""

import pytest
import torch
from ross3d_model.configuration.run import RunConfig, TrainConfig
from ross3d_model.training.trainer import train


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_bf16_steps_on_cuda(toy_task, tmp_path, stage):
    run = RunConfig(
        model="toy",
        train=TrainConfig(
            max_steps=3, micro_batch_size=2, grad_accum=2, lr=1e-2, bf16=True, save_every=3,
            deepspeed=stage,
        ),
    )  # fmt: skip
    result = train(run, toy_task, tmp_path, progress=False)
    assert len(result.records) == 3
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.records)
    assert result.records[-1]["bev"] < result.records[0]["bev"] * 1.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_real_model_mid_shape_bf16_deepspeed_steps_on_cuda(demo_data, tmp_path, stage):
    """Ross3DForCausalLM at the `mid` shape (random weights) through the real task and trainer:
    mixed task types, bf16, gradient checkpointing, DeepSpeed, a checkpoint and the export."""
    from ross3d_model.training.task import train_from_config

    run = RunConfig(
        model="mid",
        train=TrainConfig(
            max_steps=3, micro_batch_size=1, grad_accum=2, lr=1e-4, bf16=True, save_every=3,
            gradient_checkpointing=True, deepspeed=stage,
        ),
    )  # fmt: skip
    result = train_from_config(run, tmp_path, shards=demo_data["shards"], progress=False)
    assert [r["step"] for r in result.records] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.records)
    assert any(r["lm"] is not None for r in result.records)
    assert (result.export_dir / "config.json").is_file()
