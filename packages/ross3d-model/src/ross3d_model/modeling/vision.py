"""Visual pipeline: SigLIP (frozen) -> 2-layer GELU projector -> 27x27 -> bilinear pool to 14x14
-> + 3D sine PE (mask token for masked frames) -> newline token after each row (14 x 15 = 210)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel

from ross3d_model.configuration.model import PositionConfig, Ross3DConfig, VisionConfig
from ross3d_model.modeling.position import encode_xyz


def siglip_hf_config(cfg: VisionConfig) -> SiglipVisionConfig:
    """The transformers config of the tower described by `cfg` (no pooling head)."""
    return SiglipVisionConfig(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        vision_use_head=False,
    )


def build_vision_tower(cfg: VisionConfig) -> SiglipVisionModel:
    """A randomly initialised SigLIP tower of `cfg`'s shape (LLaVA-NeXT deletes SigLIP's last
    layer: 26 layers + hidden_states[-1] == layer -2 of 27); the weights of `cfg.pretrained`
    are assigned afterwards by `weights.build` (which checks every shape)."""
    tower = SiglipVisionModel(siglip_hf_config(cfg))
    if cfg.frozen:
        tower.requires_grad_(False)
    return tower


def normalise_pixels(images_BV3SS: torch.Tensor, cfg: Ross3DConfig) -> torch.Tensor:
    """uint8 RGB -> SigLIP input ((x / 255 - mean) / std), float32, on the images' device (the
    model calls it: batches carry uint8 `images` only)."""
    mean = torch.tensor(cfg.vision.image_mean, device=images_BV3SS.device).view(3, 1, 1)
    std = torch.tensor(cfg.vision.image_std, device=images_BV3SS.device).view(3, 1, 1)
    return (images_BV3SS.float() / 255.0 - mean) / std


def build_projector(vision_hidden: int, llm_hidden: int) -> nn.Sequential:
    """LLaVA mlp2x_gelu; indices 0 and 2 match the checkpoint keys `mm_projector.0/2`."""
    return nn.Sequential(
        nn.Linear(vision_hidden, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden)
    )


def vision_features(
    tower: SiglipVisionModel, pixel_values_N3SS: torch.Tensor, cfg: VisionConfig
) -> torch.Tensor:
    """Normalised pixels [N, 3, S, S] -> selected-layer patch features [N, g, g, C] (g = 27)."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not cfg.frozen):
        out = tower(pixel_values=pixel_values_N3SS, output_hidden_states=True)
    feats = out.hidden_states[cfg.select_layer]
    n, t, c = feats.shape
    if t != cfg.grid**2:
        raise ValueError(f"SigLIP returned {t} patches, expected {cfg.grid}^2")
    return feats.view(n, cfg.grid, cfg.grid, c)


def pool_grid(feats_NggD: torch.Tensor, stride: int, mode: str) -> torch.Tensor:
    """LLaVA-Video get_2dPool: [N, g, g, D] -> [N, ceil(g/s), ceil(g/s), D] ('bilinear' =
    F.interpolate to the ceil size, align_corners False)."""
    x = feats_NggD.permute(0, 3, 1, 2)
    if mode == "bilinear":
        size = [-(-x.shape[2] // stride), -(-x.shape[3] // stride)]
        x = F.interpolate(x, size=size, mode="bilinear")
    elif mode == "average":
        x = F.avg_pool2d(x, stride)
    else:
        x = F.max_pool2d(x, stride)
    return x.permute(0, 2, 3, 1)


def frame_tokens(
    pooled_BVGGD: torch.Tensor,
    coords_BVGG3: torch.Tensor,
    coords_valid_BVGG: torch.Tensor,
    masked_BV: torch.Tensor,
    mask_token_D: torch.Tensor,
    newline_D: torch.Tensor,
    pos_cfg: PositionConfig,
) -> torch.Tensor:
    """Pooled features -> LLM visual tokens [B, V, G*(G+1), D].

    Masked frames have all G*G tokens replaced by the mask token; every frame (masked or not)
    gets its 3D sine PE added; a newline token follows each row of G tokens.
    """
    b, v, g, _, d = pooled_BVGGD.shape
    mask = masked_BV[:, :, None, None, None].to(pooled_BVGGD.device)
    tokens = torch.where(mask, mask_token_D.to(pooled_BVGGD.dtype), pooled_BVGGD)
    pe = encode_xyz(coords_BVGG3, d, pos_cfg, coords_valid_BVGG).to(tokens.dtype)
    tokens = tokens + pe
    newline = newline_D.to(tokens.dtype).expand(b, v, g, 1, d)
    return torch.cat([tokens, newline], dim=3).reshape(b, v, g * (g + 1), d)
