"""Safetensors checkpoints: reading (single file or shards + index json), and the key mapping
between the public LLaVA-Video / Ross3D layout and `Ross3DForCausalLM` (table in
docs/architecture.md).

LLaVA layout (lmms-lab/LLaVA-Video-7B-Qwen2)        ours
  model.vision_tower.vision_tower.vision_model.*    vision_tower.*  (transformers 5 SigLIP)
  model.mm_projector.{0,2}.*                         mm_projector.{0,2}.*
  model.image_newline                                image_newline
  model.mask_token            (Ross3D)               mask_token
  model.mm_inv_projector.*    (Ross3D denoiser)      reconstructor.denoiser.*
  model.{embed_tokens,layers.N,norm}.*               language_model.model.{...}.*
  lm_head.*                                          language_model.lm_head.*
  ground_head_obj.* / ground_head_query.*            ground_head.obj.* / ground_head.query.*
  ground_head_zero_target                            ground_head.zero_target
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# (LLaVA prefix, our prefix), most specific first: the first match wins.
LLAVA_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    ("model.mm_projector.", "mm_projector."),
    ("model.image_newline", "image_newline"),
    ("model.mask_token", "mask_token"),
    ("model.mm_inv_projector.", "reconstructor.denoiser."),
    ("model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("ground_head_obj.", "ground_head.obj."),
    ("ground_head_query.", "ground_head.query."),
    ("ground_head_zero_target", "ground_head.zero_target"),
)
# Parts of our model a LLaVA-Video checkpoint does not hold (built from their own configs).
NOT_IN_LLAVA = ("latent_tokenizer.", "reconstructor.", "mask_token", "ground_head.")
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


def llava_to_ours(key: str) -> str | None:
    """Our parameter name for a LLaVA-layout key (None = no mapping)."""
    for theirs, ours in LLAVA_KEY_MAP:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return None


def ours_to_llava(key: str) -> str | None:
    """Inverse of `llava_to_ours` (None for parts the LLaVA layout has no name for)."""
    for theirs, ours in LLAVA_KEY_MAP:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return None


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors checkpoint folder (index json + shards, or one file)."""
    folder = Path(folder)
    index = folder / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ValueError(f"{index}: not a safetensors index (no weight_map): {err}") from err
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            path = folder / shard
            if not path.is_file():
                raise ValueError(f"{index}: shard {shard} is missing")
            state.update(load_file(str(path)))
        missing = sorted(set(weight_map) - set(state))
        if missing:
            raise ValueError(f"{index}: keys listed but absent from the shards: {missing[:5]}")
        return state
    single = folder / SINGLE_NAME
    if single.is_file():
        return load_file(str(single))
    raise ValueError(f"{folder}: no {INDEX_NAME} or {SINGLE_NAME}")


def write_sharded(state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int) -> None:
    """Write `state` as safetensors shards of at most ~max_shard_bytes plus the index json."""
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key].contiguous()
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2))


@dataclass
class LoadReport:
    """What `load_llava_checkpoint` did. `missing` excludes parts a LLaVA checkpoint never has
    (listed in `not_in_checkpoint`); `unexpected` = checkpoint keys with no place in our model."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    not_in_checkpoint: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors; missing {len(self.missing)} "
            f"{self.missing[:5]}; unexpected {len(self.unexpected)} {self.unexpected[:5]}; "
            f"{len(self.not_in_checkpoint)} Ross3D-only tensors keep their initialisation"
        )


def resolve_checkpoint(path_or_hub_id: str | Path) -> Path:
    """A local folder as is; otherwise download the safetensors + json files from the hub."""
    path = Path(path_or_hub_id)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(path_or_hub_id), allow_patterns=["*.safetensors", "*.json"]))


def load_llava_checkpoint(model: torch.nn.Module, path_or_hub_id: str | Path) -> LoadReport:
    """Copy a LLaVA-layout checkpoint's tensors into `model` (in place, shapes checked).

    ValueError on a shape mismatch; keys that do not map are reported, not loaded.
    """
    folder = resolve_checkpoint(path_or_hub_id)
    theirs = read_state_dict(folder)
    ours = model.state_dict()
    report = LoadReport()
    mapped = {}
    for key, tensor in theirs.items():
        name = llava_to_ours(key)
        if name is None or name not in ours:
            report.unexpected.append(key)
            continue
        if tuple(ours[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{folder}: {key} has shape {tuple(tensor.shape)}, model's {name} has "
                f"{tuple(ours[name].shape)} (config does not match the checkpoint)"
            )
        mapped[name] = tensor
    model.load_state_dict(mapped, strict=False)
    report.loaded = sorted(mapped)
    for name in sorted(set(ours) - set(mapped)):
        bucket = report.not_in_checkpoint if name.startswith(NOT_IN_LLAVA) else report.missing
        bucket.append(name)
    return report


def save_llava_checkpoint(
    model: torch.nn.Module, folder: Path, max_shard_bytes: int = 5 * 2**30
) -> None:
    """Export `model` in the LLaVA/Ross3D layout (the frozen VAE is not part of that layout)."""
    state = {}
    for name, tensor in model.state_dict().items():
        key = ours_to_llava(name)
        if key is not None:
            state[key] = tensor.detach().cpu()
    write_sharded(state, Path(folder), max_shard_bytes)
