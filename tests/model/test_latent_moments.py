"""BEV latents from cached moments (latent_cache) equal encoding every step."""

import pytest
import torch
from ross3d_model.configuration.parts import VaeConfig
from ross3d_model.modeling.latents import LatentTokenizer


def _bevs() -> torch.Tensor:
    torch.manual_seed(0)
    bev = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    bev[:, :, :16] = 0  # void rows: validity must come out the same too
    return bev


@pytest.mark.parametrize("mode", ["sample", "mean"])
def test_cached_moments_give_what_the_vae_gives(mode):
    """Same generator seed: encode_bev(moments=...) draws exactly the VAE's own sample."""
    tok = LatentTokenizer(VaeConfig(bev_size=64, latent_mode=mode))
    bev = _bevs()
    mean, std = tok.bev_moments(bev)
    assert mean.shape == std.shape == (2, 16, 8, 8) and bool((std > 0).all())
    encoded, valid = tok.encode_bev(bev, torch.Generator().manual_seed(5))
    moments = torch.stack([mean, std], 1)
    cached, cached_valid = tok.encode_bev(bev, torch.Generator().manual_seed(5), moments=moments)
    torch.testing.assert_close(cached, encoded, rtol=1e-5, atol=1e-6)
    assert torch.equal(cached_valid, valid)
    other, _ = tok.encode_bev(bev, torch.Generator().manual_seed(6), moments=moments)
    assert torch.equal(other, cached) is (mode == "mean")  # sample mode: fresh noise per draw


def test_cached_view_moments_give_what_the_vae_gives_for_the_chosen_views():
    tok = LatentTokenizer(VaeConfig(view_size=24))  # odd 3x3 latent: resized after the draw
    torch.manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 3, 48, 48), dtype=torch.uint8)  # resized to 24
    chosen = torch.tensor([[True, False, True], [False, False, True]])
    mean, std = tok.view_moments(images)
    assert mean.shape == std.shape == (2, 3, 16, 3, 3)
    encoded = tok.encode_views(images, torch.Generator().manual_seed(7), views_BV=chosen)
    moments = torch.stack([mean, std], 2)
    cached = tok.encode_views(
        images, torch.Generator().manual_seed(7), views_BV=chosen, moments=moments
    )
    assert cached.shape == encoded.shape == (2, 3, 64, 2, 2)
    torch.testing.assert_close(cached, encoded, rtol=1e-5, atol=1e-6)
    assert not cached[~chosen].any() and cached[chosen].abs().sum() > 0
