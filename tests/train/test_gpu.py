"""A real DeepSpeed step on CUDA (skipped without a GPU)."""

import pytest
import torch
from ross3d_model.training.config import RunConfig, TrainConfig
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
