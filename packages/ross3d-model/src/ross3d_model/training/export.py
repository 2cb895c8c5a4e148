"""`ross3d-model export`: a model folder that `predict` reads (weights/model_folder.py), written
from any complete checkpoint of a run (plain or sharded DeepSpeed), so a run can be evaluated
mid-way. The end of training writes the same folder (task.export)."""

from __future__ import annotations

from pathlib import Path

import torch

from ross3d_model.training import checkpointing as ckpt


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """RUN_DIR/checkpoints/step-N -> OUT_DIR. The weights are the checkpoint's (DeepSpeed: the
    fp32 master weights, cast to bf16 when the run trained in bf16, as the end-of-training
    export). ValueError naming the folder when it is not a complete checkpoint of a run."""
    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.training.engine import read_model_state
    from ross3d_model.training.task import load_tokenizer
    from ross3d_model.weights.build import from_config
    from ross3d_model.weights.model_folder import write_model_folder

    checkpoint = Path(checkpoint)
    if not (checkpoint / ckpt.COMPLETE).is_file():
        raise ValueError(
            f"{checkpoint}: not a complete checkpoint (no {ckpt.COMPLETE} marker: a missing "
            "folder, or a run killed while saving it)"
        )
    run_file = checkpoint.parent.parent / ckpt.RUN_CONFIG_FILE
    if not run_file.is_file():
        raise ValueError(
            f"{checkpoint}: no {ckpt.RUN_CONFIG_FILE} in the run folder {run_file.parent}"
        )
    run = load_run_config(run_file)
    cfg = load_config(run.model)
    state = read_model_state(checkpoint)
    if run.train.deepspeed is not None and run.train.bf16:
        state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
    model = from_config(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint}: checkpoint does not match the run's model {run.model}: missing "
            f"{sorted(missing)[:5]} ({len(missing)}), unexpected {sorted(unexpected)[:5]}"
        )
    return write_model_folder(model, state, load_tokenizer(cfg), out_dir)
