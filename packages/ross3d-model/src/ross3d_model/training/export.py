"""`ross3d-model export`: a model folder that `predict` reads (weights/model_folder.py), written
from any complete checkpoint of a run (plain or sharded DeepSpeed), so a run can be evaluated
mid-way. The end of training writes the same folder (task.export).

Nothing is built: the tensor names come from a meta skeleton of the run's model (no memory, no
pretrained source opened) and the tensors are streamed from the checkpoint into the folder's
safetensors shards, one shard in memory at a time. Host memory: plain checkpoints are
memory-mapped; a DeepSpeed checkpoint's fp32 master partitions are loaded one rank file at a
time and kept (zero_to_fp32's lazy mode: 4 bytes per trainable parameter, ~31 GB at 7B) while
each tensor is merged when written, where building the model from every pretrained source
took ~80 GB. The model's config (the VAE's config.json too) must be readable, as for a build."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ross3d_model.training import checkpointing as ckpt


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, max_shard_bytes: int | None = None
) -> Path:
    """RUN_DIR/checkpoints/step-N -> OUT_DIR. The weights are the checkpoint's (DeepSpeed: the
    fp32 master weights); when the run trained in bf16 under DeepSpeed its parameters are
    written in bf16, as the end-of-training export, and the float32 buffers (the denoiser's
    position tables) stay float32. ValueError naming the folder when it is not a complete
    checkpoint of a run, or its tensors do not match the run's model."""
    from ross3d_model.configuration.model import load_config
    from ross3d_model.training.task import load_tokenizer
    from ross3d_model.weights.model_folder import MAX_SHARD_BYTES, write_streamed_folder

    checkpoint = Path(checkpoint)
    run = _run_of(checkpoint)
    cfg = load_config(run.model)
    hf_config, names, params = _skeleton_names(cfg)
    bf16 = run.train.deepspeed is not None and run.train.bf16
    loaders = _checkpoint_tensors(checkpoint)
    missing, unexpected = sorted(set(names) - set(loaders)), sorted(set(loaders) - set(names))
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint}: checkpoint does not match the run's model {run.model}: missing "
            f"{missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    hf_config.architectures = ["Ross3DForCausalLM"]
    hf_config.dtype = "bfloat16" if bf16 else "float32"

    def stream() -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
        for name in names:
            cast = bf16 and name in params
            yield name, _cast_loader(loaders[name], torch.bfloat16 if cast else None)

    return write_streamed_folder(
        hf_config, stream(), load_tokenizer(cfg), out_dir, max_shard_bytes or MAX_SHARD_BYTES
    )


def _run_of(checkpoint: Path):
    from ross3d_model.configuration.run import load_run_config

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
    return load_run_config(run_file)


def _skeleton_names(cfg):
    """(HF config, the state-dict names save_pretrained writes, the parameter names) of the
    model of `cfg`, from a meta skeleton: nothing allocated, no checkpoint opened."""
    from ross3d_model.modeling.model import Ross3DForCausalLM, Ross3DHFConfig
    from ross3d_model.weights.loading import meta_skeleton

    hf_config = Ross3DHFConfig(ross3d=cfg.to_dict())
    skeleton = meta_skeleton(Ross3DForCausalLM, hf_config, False)
    return hf_config, list(skeleton.state_dict()), {n for n, _ in skeleton.named_parameters()}


def _checkpoint_tensors(folder: Path) -> dict[str, Callable[[], torch.Tensor]]:
    """Name -> load() of every tensor of a checkpoint folder, on CPU, read when called:
    DeepSpeed (ds/): the fp32 master weights, merged from the ranks' partitions per tensor
    (zero_to_fp32's lazy mode); plain: model.pt memory-mapped."""
    from ross3d_model.training.engine import DS_TAG, MODEL_FILE

    if (folder / DS_TAG).is_dir():
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        lazy = get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=DS_TAG, lazy_mode=True)
        return {k: _lazy_loader(v) for k, v in lazy.items()}
    if (folder / MODEL_FILE).is_file():
        state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True, mmap=True)
        return {k: (lambda t=v: t) for k, v in state.items()}
    raise ValueError(
        f"{folder}: neither a DeepSpeed ({DS_TAG}/) nor a plain ({MODEL_FILE}) checkpoint"
    )


def _lazy_loader(value) -> Callable[[], torch.Tensor]:
    return (lambda: value) if isinstance(value, torch.Tensor) else value.contiguous


def _cast_loader(load: Callable[[], torch.Tensor], dtype: torch.dtype | None):
    if dtype is None:
        return load

    def cast() -> torch.Tensor:
        tensor = load()
        return tensor.to(dtype) if tensor.is_floating_point() else tensor

    return cast
