"""The model folder that `predict` reads and training writes: `config.json` + safetensors (the
model's `save_pretrained`) + `tokenizer/`. A training run writes it to `OUTPUT_DIR/model/`;
`ross3d-model export` writes one from any complete checkpoint of a run."""

from __future__ import annotations

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
