"""The model folder that `predict` reads and training writes: `config.json` + safetensors (the
model's `save_pretrained`) + `tokenizer/`. A training run writes it to `OUTPUT_DIR/model/`;
`ross3d-model export` writes one from any complete checkpoint of a run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

EXPORT_DIR = "model"  # the model folder inside a training OUTPUT_DIR
TOKENIZER_DIR = "tokenizer"  # the tokenizer inside a model folder
CONFIG_FILE = "config.json"


def write_model_folder(
    model, state_dict: dict[str, torch.Tensor], tokenizer, out_dir: str | Path
) -> Path:
    """Write `model`'s config with `state_dict` as its weights, and `tokenizer`, to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), state_dict=state_dict)
    tokenizer.save_pretrained(str(out_dir / TOKENIZER_DIR))
    return out_dir


SAFETENSORS_INDEX = "model.safetensors.index.json"
MAX_SHARD_BYTES = 5 * 2**30  # transformers' default shard size


def write_streamed_folder(
    hf_config,
    tensors: Iterable[tuple[str, Callable[[], torch.Tensor]]],
    tokenizer,
    out_dir: str | Path,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """The model folder `write_model_folder` writes, without a model: `hf_config`'s
    config.json, then `tensors` (name, load()) read one at a time and written shard by shard
    (at most one shard in memory; `model-0000i-of-0000N.safetensors` + the index when there
    are several, as `save_pretrained` names them), then the tokenizer."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts: list[list[str]] = []
    shard: dict[str, torch.Tensor] = {}
    size = 0
    for name, load in tensors:
        tensor = load().contiguous()
        if shard and size + tensor.nbytes > max_shard_bytes:
            parts.append(_save_part(shard, out_dir, len(parts), save_file))
            shard, size = {}, 0
        shard[name], size = tensor, size + tensor.nbytes
    parts.append(_save_part(shard, out_dir, len(parts), save_file))
    _name_parts(parts, out_dir)
    hf_config.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir / TOKENIZER_DIR))
    return out_dir


def _save_part(shard: dict, out_dir: Path, index: int, save_file) -> list[str]:
    save_file(shard, str(out_dir / f".part-{index}.safetensors"), metadata={"format": "pt"})
    return list(shard)


def _name_parts(parts: list[list[str]], out_dir: Path) -> None:
    """Rename the written parts as save_pretrained names its shards; the index if several."""
    if len(parts) == 1:
        (out_dir / ".part-0.safetensors").rename(out_dir / "model.safetensors")
        return
    weight_map, total = {}, 0
    for i, names in enumerate(parts):
        file = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        part = out_dir / f".part-{i}.safetensors"
        total += part.stat().st_size
        part.rename(out_dir / file)
        weight_map.update(dict.fromkeys(names, file))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n")


def find_model_folder(path: str | Path) -> Path:
    """The model folder at `path` or in `path/model/` (a training OUTPUT_DIR). ValueError naming
    the folder when there is no config.json or no tokenizer/ folder."""
    path = Path(path)
    folder = path / EXPORT_DIR if (path / EXPORT_DIR / CONFIG_FILE).is_file() else path
    if not (folder / CONFIG_FILE).is_file():
        raise ValueError(f"{path}: no exported model ({CONFIG_FILE}) here or in {EXPORT_DIR}/")
    if not (folder / TOKENIZER_DIR).is_dir():
        raise ValueError(f"{folder}: no {TOKENIZER_DIR}/ folder next to the weights")
    return folder
