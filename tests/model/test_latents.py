"""Frozen VAE targets: layout, sizes, BEV validity and freezing (tiny random AutoencoderKL)."""

import pytest
import torch
import torch.nn.functional as F
from ross3d_model.configuration.parts import VaeConfig
from ross3d_model.modeling.latents import (
    LatentTokenizer,
    bev_valid_cells,
    channel_to_space,
    space_to_channel,
)


@pytest.fixture(scope="module")
def tokenizer():
    return LatentTokenizer(VaeConfig(latent_mode="mean"))


def test_space_to_channel_layout_on_hand_made_tensor():
    c, h, w = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(6), indexing="ij")
    z = (1000 * c + 10 * h + w).float().unsqueeze(0)  # value encodes (channel, row, col)
    out = space_to_channel(z)
    assert out.shape == (1, 8, 2, 3)
    for ch in range(2):
        for p1 in range(2):
            for p2 in range(2):
                for row in range(2):
                    for col in range(3):
                        expected = 1000 * ch + 10 * (2 * row + p1) + (2 * col + p2)
                        assert out[0, 4 * ch + 2 * p1 + p2, row, col].item() == expected
    assert torch.equal(channel_to_space(out), z)


def test_space_to_channel_matches_the_public_unfold_grouping():
    z = torch.randn(2, 16, 6, 6)
    windows = z.unfold(2, 2, 2).unfold(3, 2, 2)  # b c h w p1 p2
    grouped = windows.permute(0, 1, 4, 5, 2, 3).reshape(2, 64, 3, 3)
    assert torch.equal(space_to_channel(z), grouped)


def test_encode_views_shapes_and_no_grad(tokenizer):
    images = torch.randint(0, 256, (1, 2, 3, 384, 384), dtype=torch.uint8)
    latents = tokenizer.encode_views(images)
    assert latents.shape == (1, 2, 64, 14, 14) and latents.dtype == torch.float32
    assert not latents.requires_grad
    assert torch.equal(latents, tokenizer.encode_views(images))  # mean mode is deterministic
    only_second = tokenizer.encode_views(images, views_BV=torch.tensor([[False, True]]))
    assert torch.count_nonzero(only_second[0, 0]) == 0
    torch.testing.assert_close(only_second[0, 1], latents[0, 1])
    none = tokenizer.encode_views(images, views_BV=torch.zeros(1, 2, dtype=torch.bool))
    assert none.shape == latents.shape and torch.count_nonzero(none) == 0


def test_scale_and_shift_are_applied_as_flux(tokenizer):
    images = torch.randint(0, 256, (1, 1, 3, 216, 216), dtype=torch.uint8)
    plain = LatentTokenizer(VaeConfig(latent_mode="mean", scaling_factor=1.0, shift_factor=0.0))
    scaled = LatentTokenizer(VaeConfig(latent_mode="mean", scaling_factor=2.0, shift_factor=0.5))
    raw = plain.encode_views(images)
    # (raw - 0.5) * 2; the 27 -> 28 bilinear resize is affine-preserving, so this holds exactly
    torch.testing.assert_close(scaled.encode_views(images), 2.0 * raw - 1.0)
    assert tokenizer.scaling_factor == pytest.approx(0.3611)
    assert tokenizer.shift_factor == pytest.approx(0.1159)


def test_sample_mode_draws_from_the_latent_distribution(tokenizer):
    images = torch.randint(0, 256, (1, 1, 3, 216, 216), dtype=torch.uint8)
    sampler = LatentTokenizer(VaeConfig(latent_mode="sample"))
    a = sampler.encode_views(images, generator=torch.Generator().manual_seed(3))
    b = sampler.encode_views(images, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, tokenizer.encode_views(images))


def test_bev_valid_cells_by_hand():
    bev = torch.zeros(1, 3, 432, 432, dtype=torch.uint8)
    bev[0, 1, :100, :50] = 7  # rows 0..99, cols 0..49 painted; 16x16-pixel cells
    any_pixel = bev_valid_cells(bev, 27)
    assert any_pixel.sum().item() == 7 * 4  # rows 0..6 (96..111 partly), cols 0..3 (48..63 partly)
    assert any_pixel[0, :7, :4].all()
    half = bev_valid_cells(bev, 27, min_fraction=0.5)
    assert half.sum().item() == 6 * 3  # row 6 has 4/16 painted rows, col 3 has 2/16 columns


def test_encode_bev_shapes_and_validity(tokenizer):
    bev = torch.zeros(2, 3, 432, 432, dtype=torch.uint8)
    bev[1, :, 16:32, 32:48] = 200
    latents, valid = tokenizer.encode_bev(bev)
    assert latents.shape == (2, 64, 27, 27) and valid.shape == (2, 27, 27)
    assert valid.dtype == torch.bool
    assert valid[0].sum() == 0 and valid[1].nonzero().tolist() == [[1, 2]]


def test_vae_is_frozen_and_stays_in_eval(tokenizer):
    assert all(not p.requires_grad for p in tokenizer.parameters())
    tokenizer.train()
    assert not tokenizer.vae.training
    images = torch.randint(0, 256, (1, 1, 3, 216, 216), dtype=torch.uint8)
    with torch.enable_grad():
        assert not tokenizer.encode_views(images).requires_grad


def test_bad_images_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="uint8"):
        tokenizer.encode_views(torch.zeros(1, 1, 3, 216, 216))
    with pytest.raises(ValueError, match="3 channels"):
        tokenizer.encode_bev(torch.zeros(1, 4, 432, 432, dtype=torch.uint8))
    with pytest.raises(ValueError, match="latent_mode"):
        VaeConfig(latent_mode="mode")


def test_view_grid_follows_the_image_size():
    cfg = VaeConfig(view_size=224, bev_size=432)
    assert (cfg.view_grid, cfg.bev_grid, cfg.target_channels) == (14, 27, 64)
    assert F.pixel_unshuffle(torch.zeros(1, 16, 28, 28), 2).shape[-1] == cfg.view_grid


def test_bev_valid_cells_bilinear_mean_rule_by_hand():
    """Public rule (ross3d_arch.py ~1250-1251): bilinear resize 432 -> 27 (no antialiasing),
    channel mean > 0. Output cell i samples input coordinate 16 i + 7.5, i.e. pixels 16 i + 7 and
    16 i + 8 of each axis: a cell is valid iff one of those 2x2 centre pixels is non-black."""
    bev = torch.zeros(1, 3, 432, 432, dtype=torch.uint8)
    bev[0, 0, 16 + 8, 32 + 7] = 5  # a centre pixel of cell (1, 2)
    bev[0, 2, 5 * 16, 6 * 16] = 9  # the corner pixel of cell (5, 6): not read by the bilinear rule
    centre = bev_valid_cells(bev, 27, rule="bilinear-mean")
    assert centre.nonzero().tolist() == [[0, 1, 2]]
    block = bev_valid_cells(bev, 27, rule="block")
    assert block.nonzero().tolist() == [[0, 1, 2], [0, 5, 6]]


def test_vae_input_resize_follows_the_antialias_switch():
    """Public views: F.interpolate(mode='bilinear') 384 -> 216 without antialiasing
    (ross3d_arch.py ~1105); `antialias=True` low-passes first."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 1, 3, 384, 384), generator=g, dtype=torch.uint8)
    x = images[0].float() / 127.5 - 1.0
    for antialias in (False, True):
        tok = LatentTokenizer(VaeConfig(latent_mode="mean", antialias=antialias))
        seen: list[torch.Tensor] = []
        tok.vae.encoder.register_forward_pre_hook(lambda _m, args, out=seen: out.append(args[0]))
        tok.encode_views(images)
        want = F.interpolate(x, size=(216, 216), mode="bilinear", antialias=antialias)
        assert torch.allclose(seen[0], want.clamp(-1, 1), atol=1e-6)
    assert not torch.allclose(
        F.interpolate(x, size=(216, 216), mode="bilinear"),
        F.interpolate(x, size=(216, 216), mode="bilinear", antialias=True),
        atol=1e-2,
    )


def test_bev_min_valid_fraction_needs_the_block_rule():
    with pytest.raises(ValueError, match="bev_min_valid_fraction"):
        VaeConfig(bev_min_valid_fraction=0.5)
    with pytest.raises(ValueError, match="bev_valid_rule"):
        VaeConfig(bev_valid_rule="nope")
