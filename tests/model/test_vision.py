"""Visual pipeline pieces: bilinear 27 -> 14 pooling, mask token, PE, newline layout."""

import torch
from ross3d_model.configuration.model import PositionConfig
from ross3d_model.modeling.position import encode_xyz
from ross3d_model.modeling.vision import frame_tokens, pool_grid


def test_bilinear_pool_is_ceil_half_and_samples_like_llava_video():
    # a ramp f(r, c) = r: bilinear (align_corners False) returns the source row coordinate
    # (i + 0.5) * 27 / 14 - 0.5, clamped to [0, 26]
    ramp = torch.arange(27.0)[:, None].expand(27, 27)
    pooled = pool_grid(ramp[None, :, :, None], 2, "bilinear")
    assert pooled.shape == (1, 14, 14, 1)
    expected = ((torch.arange(14) + 0.5) * 27 / 14 - 0.5).clamp(0, 26)
    assert torch.allclose(pooled[0, :, 0, 0], expected, atol=1e-5)
    assert torch.allclose(pooled[0, :, 5, 0], expected, atol=1e-5)


def test_frame_tokens_mask_pe_and_newlines():
    b, v, g, d = 1, 3, 2, 6
    pooled = torch.randn(b, v, g, g, d)
    coords = torch.randn(b, v, g, g, 3)
    valid = torch.ones(b, v, g, g, dtype=torch.bool)
    masked = torch.tensor([[False, True, False]])
    mask_tok, newline = torch.full((d,), 7.0), torch.full((d,), -3.0)
    cfg = PositionConfig()
    out = frame_tokens(pooled, coords, valid, masked, mask_tok, newline, cfg)
    assert out.shape == (b, v, g * (g + 1), d)
    pe = encode_xyz(coords, d, cfg)
    rows = out.view(b, v, g, g + 1, d)
    assert torch.equal(rows[:, :, :, g], newline.expand(b, v, g, d))
    assert torch.allclose(rows[0, 1, :, :g], mask_tok + pe[0, 1])  # masked: mask token + own PE
    assert torch.allclose(rows[0, 0, :, :g], pooled[0, 0] + pe[0, 0])
    assert torch.allclose(rows[0, 2, :, :g], pooled[0, 2] + pe[0, 2])
