"""Building a `Ross3DForCausalLM` with its weights: the model is first built on the meta device
from its config alone, then every tensor a checkpoint provides is assigned (loading.py), and
only the components no checkpoint provides are built for real (torchtitan's order; the model
class never reads a checkpoint itself).

- `from_config(cfg)`: the sources the config names (`init_from`, `vision/llm/vae.pretrained`,
  `reconstruction.pretrained_denoiser`: reference_layouts.config_sources);
- `from_pretrained(folder)`: a folder written by `save_pretrained` (model_folder.py);
- `check_init(cfg)`: what `from_config` would load, from checkpoint headers only, one row per
  pretrained part (check.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.modeling.model import Ross3DForCausalLM, Ross3DHFConfig
from ross3d_model.weights.check import check_init as check_init  # re-exported
from ross3d_model.weights.loading import Checkpoint, build_from_sources
from ross3d_model.weights.reference_layouts import config_sources, drop_parts, prefixed_source

# Parts a model built for inference has none of (no VAE, no denoiser).
TRAINING_ONLY = ("reconstructor.", "latent_tokenizer.")


def from_config(
    cfg: Ross3DConfig,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    inference: bool = False,
) -> Ross3DForCausalLM:
    """The model of `cfg`, leanly: every pretrained part the config names is assigned from its
    checkpoint onto a meta skeleton; only the rest is initialised, in `dtype` (None: float32)
    on `device`. `inference`: no VAE and no denoiser. Any missing, unexpected or mismatched
    tensor is a ValueError (`ross3d-model check-init` lists them without building)."""
    config = Ross3DHFConfig(ross3d=cfg.to_dict())
    sources = config_sources(cfg, inference)
    return build_from_sources(
        Ross3DForCausalLM, config, sources, dtype, device, inference, "model config"
    )


def from_pretrained(
    path: str | Path,
    dtype: torch.dtype | None = None,
    *,
    device: str | torch.device | None = None,
    inference: bool = False,
) -> Ross3DForCausalLM:
    """A folder written by `save_pretrained` (config.json + safetensors, sharded or not),
    leanly: a meta skeleton, every tensor assigned from the memory-mapped files, nothing
    downloaded; every key must match, so the round trip is exact. `inference`: no VAE and no
    denoiser are built; their keys are ignored."""
    config = Ross3DHFConfig.from_pretrained(str(path))
    source = prefixed_source("export", Checkpoint(Path(path)), "", config.model_cfg)
    if inference:
        source = drop_parts(source, TRAINING_ONLY, "inference")
    return build_from_sources(
        Ross3DForCausalLM, config, [source], dtype, device, inference, str(path)
    )
