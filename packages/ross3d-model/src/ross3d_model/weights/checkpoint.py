"""Safetensors checkpoints: reading (single file or shards + index json), writing shards, finding
a local or hub checkpoint, and the prefix mapping between the public LLaVA-Video / Ross3D layout
and `Ross3DForCausalLM` (table in docs/architecture.md; the denoiser's inner names and the export
in the released layout: `reference_layouts.py`; loading: `loading.py`).

LLaVA layout (lmms-lab/LLaVA-Video-7B-Qwen2)        ours
  model.vision_tower.vision_tower.vision_model.*    vision_tower.*  (transformers 5 SigLIP)
  model.mm_projector.{0,2}.*                         mm_projector.{0,2}.*
  model.image_newline                                image_newline
  model.mask_token            (Ross3D)               mask_token
  model.mm_inv_projector.net.*  (Ross3D denoiser)    reconstructor.denoiser.*  (renamed inside)
  model.{embed_tokens,layers.N,norm}.*               language_model.model.{...}.*
  lm_head.*                                          language_model.lm_head.*
  ground_head_obj.* / ground_head_query.*            ground_head.obj.* / ground_head.query.*
  ground_head_zero_target                            ground_head.zero_target
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ross3d_model.configuration.model import LOCAL_SUFFIXES
from ross3d_model.weights.loading import Checkpoint

# (LLaVA prefix, our prefix), most specific first: the first match wins.
LLAVA_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.vision_tower.vision_model.", "vision_tower."),
    ("model.mm_projector.", "mm_projector."),
    ("model.image_newline", "image_newline"),
    ("model.mask_token", "mask_token"),
    ("model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("ground_head_obj.", "ground_head.obj."),
    ("ground_head_query.", "ground_head.query."),
    ("ground_head_zero_target", "ground_head.zero_target"),
)
INDEX_NAME = "model.safetensors.index.json"


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
    """All tensors of a checkpoint, read by `loading.Checkpoint` (one safetensors file, or a
    folder with one file or shards + index json; a clear error naming a missing shard)."""
    ckpt = Checkpoint(folder)
    return {key: ckpt.read(key) for key in ckpt.keys}


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


def resolve_checkpoint(path_or_hub_id: str | Path, subfolder: str | None = None) -> Path:
    """A local file or folder as is (one that does not exist is an error, never a hub id:
    `is_local_source`); otherwise download the hub repo's safetensors and json files
    (only those under `subfolder` when given) and return the snapshot folder."""
    path = Path(path_or_hub_id)
    if path.exists():
        return path
    if is_local_source(str(path_or_hub_id)):
        raise ValueError(f"{path}: no such file or folder (a local path: not looked up on the hub)")
    from huggingface_hub import snapshot_download

    prefix = "" if subfolder is None else f"{subfolder}/"
    try:
        return Path(
            snapshot_download(
                str(path_or_hub_id),
                allow_patterns=[f"{prefix}*.safetensors", f"{prefix}*.json"],
            )
        )
    except Exception as err:  # hub errors have many types; the message names the id
        raise ValueError(f"{path_or_hub_id}: not a local path and not downloadable: {err}") from err


def is_local_source(value: str) -> bool:
    """True for a local file or folder, existing or not: an existing path, an absolute one, one
    starting with `.` or `~`, one naming a checkpoint file (LOCAL_SUFFIXES) or with more than
    one `/` (a hub repo id is `name` or `org/name`)."""
    path = Path(value)
    return (
        path.exists()
        or path.is_absolute()
        or value.startswith((".", "~"))
        or path.suffix in LOCAL_SUFFIXES
        or value.count("/") > 1
    )
