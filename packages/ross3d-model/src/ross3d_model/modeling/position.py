"""Parameter-free 3D sine position encoding of aligned xyz (metres), as in Video-3D-LLM.

xyz is clamped to [min_xyz, max_xyz], turned into voxel indices round((xyz - min) / voxel)
(0.1 m voxels: x, y in 0..300, z in 0..100) and each axis is encoded with
`n = dim // 3` features: feature i = sin(v / T^(2 floor(i/2) / n)) for even i and
cos(...) for odd i (interleaved), axes concatenated [x | y | z], zero-padded to `dim`.

The xyz it encodes are the token cells' (`ross3d_data.views.coords`: `token_coordinates`, and
`camera_centre_fill` for `position.invalid_depth = "camera-centre"`, applied in the collate),
and box centres. The encoding itself exists only here: it runs per step on the model's device.
"""

from __future__ import annotations

import torch

from ross3d_model.configuration.model import PositionConfig


def discretize_xyz(xyz_N3: torch.Tensor, cfg: PositionConfig) -> torch.Tensor:
    """Aligned xyz in metres [..., 3] -> clamped voxel indices (float, integral values) [..., 3]."""
    lo = torch.tensor(cfg.min_xyz, dtype=torch.float32, device=xyz_N3.device)
    hi = torch.tensor(cfg.max_xyz, dtype=torch.float32, device=xyz_N3.device)
    clamped = torch.minimum(torch.maximum(xyz_N3.float(), lo), hi)
    return ((clamped - lo) / cfg.voxel_size).round()


def sine_encoding(values_N3: torch.Tensor, dim: int, temperature: float) -> torch.Tensor:
    """Per-axis interleaved sin/cos of already-discretised values [..., 3] -> [..., dim] float32."""
    n = dim // 3
    if n < 1:
        raise ValueError(f"position encoding needs dim >= 3, got {dim}")
    i = torch.arange(n, dtype=torch.float32, device=values_N3.device)
    freqs = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / n)
    angles = values_N3.float()[..., None] / freqs  # [..., 3, n]
    even = (i % 2 == 0).expand_as(angles)
    per_axis = torch.where(even, angles.sin(), angles.cos())
    enc = per_axis.flatten(-2)  # [..., 3n]: x features, then y, then z
    return torch.nn.functional.pad(enc, (0, dim - 3 * n))


def encode_xyz(
    xyz_N3: torch.Tensor, dim: int, cfg: PositionConfig, valid_N: torch.Tensor | None = None
) -> torch.Tensor:
    """Aligned xyz in metres [..., 3] -> sine encoding [..., dim]; invalid cells get zeros."""
    enc = sine_encoding(discretize_xyz(xyz_N3, cfg), dim, cfg.temperature)
    if valid_N is not None:
        enc = enc * valid_N[..., None].to(enc.dtype)
    return enc
