"""DiT denoiser parts: adaLN-zero and reference init, fixed position tables, attention pooling."""

import pytest
import torch
from ross3d_model.modeling.denoiser import AttentionPooling, Denoiser, DiTBlock


def _denoiser(**overrides):
    kwargs = dict(
        channels=8,
        width=32,
        depth=2,
        num_heads=4,
        mlp_ratio=4.0,
        cond_features=24,
        grids={"view": 4, "bev": 5},
        pool_heads=4,
    )
    kwargs.update(overrides)
    return Denoiser(**kwargs)


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_every_block_is_the_identity_at_init_and_output_is_zero():
    torch.manual_seed(0)
    den = _denoiser()
    x, c = torch.randn(3, 16, 32), torch.randn(3, 16, 32)
    for block in den.blocks:
        assert torch.equal(block(x, c), x)
    cond = den.branches["view"].pooling(torch.randn(3, 10, 24))
    out = den(torch.randn(3, 8, 4, 4), torch.tensor([0, 10, 999]), cond, "view")
    assert out.shape == (3, 8, 4, 4) and torch.count_nonzero(out) == 0


def test_reference_init_is_pytorch_default_not_adaln_zero():
    """ross3d denoiser_dit_multi.py line 205: `# self.initialize_weights()`, so every Linear keeps
    PyTorch's default init: weights and biases uniform in +-1/sqrt(fan_in), nothing zeroed."""
    torch.manual_seed(0)
    den = _denoiser(init="reference")
    for linear in (den.blocks[0].adaLN_modulation[-1], den.final_layer.linear):
        bound = 1 / linear.in_features**0.5
        for t in (linear.weight, linear.bias):
            assert torch.count_nonzero(t) == t.numel() and t.abs().max() <= bound
    x, c = torch.randn(3, 16, 32), torch.randn(3, 16, 32)
    assert not torch.allclose(den.blocks[0](x, c), x)
    with pytest.raises(ValueError, match="denoiser init must be one of"):
        _denoiser(init="xavier")


def test_block_modulation_uses_the_condition_once_trained():
    block = DiTBlock(32, 4, 4.0)
    torch.nn.init.normal_(block.adaLN_modulation[-1].weight, std=0.1)
    x = torch.randn(2, 9, 32)
    a, b = block(x, torch.zeros(2, 9, 32)), block(x, torch.ones(2, 9, 32))
    assert not torch.allclose(a, x) and not torch.allclose(a, b)


def test_position_tables_are_fixed_2d_sincos_buffers():
    den = _denoiser()
    view, bev = den.branches["view"].pos_embed, den.branches["bev"].pos_embed
    assert view.shape == (16, 32) and bev.shape == (25, 32)
    assert "pos_embed" not in {n.split(".")[-1] for n, _ in den.named_parameters()}
    # persistent: the reference loader writes interpolated tables into them, exports carry them
    assert {k for k in den.state_dict() if k.endswith("pos_embed")} == {
        "branches.view.pos_embed",
        "branches.bev.pos_embed",
    }
    # cell (0, 0): every sin is 0 and every cos is 1; all cells distinct
    assert torch.allclose(view[0].abs().sum(), torch.tensor(16.0))
    assert torch.unique(view, dim=0).shape[0] == 16


def test_pooling_reads_only_unmasked_tokens():
    torch.manual_seed(0)
    pool = AttentionPooling(in_features=12, width=16, num_queries=5, num_heads=4)
    tokens = torch.randn(2, 7, 12)
    keep = torch.tensor([[1, 1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    pooled = pool(tokens, keep)
    assert pooled.shape == (2, 5, 16)
    for n in range(2):
        subset = pool(tokens[n : n + 1, keep[n]])
        torch.testing.assert_close(pooled[n : n + 1], subset)
    changed = tokens.clone()
    changed[~keep] += 5.0
    torch.testing.assert_close(pool(changed, keep), pooled)


def test_pooling_rows_share_one_projection_of_the_token_sets():
    torch.manual_seed(1)
    pool = AttentionPooling(in_features=12, width=16, num_queries=3, num_heads=2)
    tokens = torch.randn(2, 6, 12)
    rows = torch.tensor([1, 1, 0])
    masks = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1, 0, 0, 0, 0, 1]]).bool()
    shared = pool(tokens, masks, rows_M=rows)
    torch.testing.assert_close(shared, pool(tokens[rows], masks))
    assert not torch.allclose(shared[0], shared[1])


def test_timestep_changes_the_prediction_after_training():
    den = _denoiser()
    _randomize(den)
    x = torch.randn(1, 8, 5, 5).repeat(2, 1, 1, 1)
    cond = den.branches["bev"].pooling(torch.randn(1, 6, 24)).repeat(2, 1, 1)
    out = den(x, torch.tensor([3, 900]), cond, "bev")
    assert not torch.allclose(out[0], out[1])


def test_wrong_latent_shape_is_rejected():
    den = _denoiser()
    cond = torch.zeros(1, 16, 32)
    with pytest.raises(ValueError, match="view latents"):
        den(torch.zeros(1, 8, 5, 5), torch.tensor([1]), cond, "view")
