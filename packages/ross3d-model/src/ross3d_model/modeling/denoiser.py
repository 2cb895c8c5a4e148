"""The small DiT that denoises VAE latent tokens conditioned on the LLM's visual hidden states.

Structure (after the public Ross3D denoiser, written afresh):
- per branch ("view" 14x14, "bev" 27x27): a patch-size-1 input embedder (Linear over the 64
  latent channels), a fixed 2D sin-cos position table, and an :class:`AttentionPooling` whose
  learnable queries (one per latent token) read the conditioning tokens;
- shared: timestep embedder, ``depth`` :class:`DiTBlock` s with adaLN-zero modulation by the
  per-token condition ``c = t_emb + z`` (z = pooled condition), and :class:`FinalLayer`.
Initialisation (``init``, model config ``reconstruction.denoiser_init``):
- ``"adaln-zero"``: DiT's ``initialize_weights`` (xavier Linears, N(0, 0.02) conditioning paths,
  every adaLN modulation and the final projection zero: each block starts as the identity and
  the denoiser outputs 0, so at step 0 no reconstruction gradient reaches the LLM);
- ``"reference"``: PyTorch's default Linear init, as the public Ross3D DiT (its
  ``initialize_weights`` call is commented out, ross3d ``denoiser_dit_multi.py`` line 205); in
  the recipe most of it is then overwritten by the ROSS 2D denoiser (``loading.py``).
The position tables are persistent buffers: the reference loader writes interpolated copies of
the 2D table into them, and exports carry them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_2d_sincos_pos_embed
from torch import nn

from ross3d_model.configuration.parts import DENOISER_INITS

TIME_FREQ_DIM = 256


def modulate(x_NTD: torch.Tensor, shift_NTD: torch.Tensor, scale_NTD: torch.Tensor):
    return x_NTD * (1 + scale_NTD) + shift_NTD


class AttentionPooling(nn.Module):
    """Learnable queries attend over conditioning tokens: LayerNorm (no affine) -> SiLU ->
    Linear to ``width`` -> keys/values (no bias) -> multi-head attention -> Linear.

    Everything happens inside ``forward`` so that ZeRO-3 parameter gathering (forward hooks)
    sees every use of the parameters.
    """

    def __init__(self, in_features: int, width: int, num_queries: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} must be divisible by pooling heads {num_heads}")
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(in_features, elementwise_affine=False)
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(in_features, width))
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.queries = nn.Parameter(torch.randn(num_queries, width) * 0.02)
        self.out = nn.Linear(width, width, bias=False)

    def forward(
        self,
        tokens_NLF: torch.Tensor,
        key_mask_ML: torch.Tensor | None = None,
        rows_M: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled conditions [M, num_queries, width] from token sets [N, L, in_features].

        Condition m reads token set ``rows_M[m]`` (default: M = N, condition i reads set i),
        restricted to the tokens where ``key_mask_ML[m]`` is True (every row needs one), so
        several conditions share one projection of the tokens.
        """
        x = self.proj(self.norm(tokens_NLF.to(self.queries.dtype)))
        keys, values = self._heads(self.k(x)), self._heads(self.v(x))
        if rows_M is not None:
            keys, values = keys[rows_M], values[rows_M]
        q = self._heads(self.queries.unsqueeze(0)).expand(keys.shape[0], -1, -1, -1)
        mask = None if key_mask_ML is None else key_mask_ML[:, None, None, :]
        pooled = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.out(pooled.transpose(1, 2).flatten(2))

    def _heads(self, x_NLD: torch.Tensor) -> torch.Tensor:
        return x_NLD.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)


class DiTBlock(nn.Module):
    """Self-attention + MLP, each modulated (shift, scale) and gated by the per-token condition."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(
            query_dim=width, heads=num_heads, dim_head=width // num_heads, bias=True
        )
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(
            width, activation_fn="gelu-approximate", inner_dim=int(width * mlp_ratio)
        )
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x_NTD: torch.Tensor, c_NTD: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c_NTD).chunk(6, -1)
        x_NTD = x_NTD + gate1 * self.attn(modulate(self.norm1(x_NTD), shift1, scale1))
        return x_NTD + gate2 * self.mlp(modulate(self.norm2(x_NTD), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x_NTD: torch.Tensor, c_NTD: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c_NTD).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x_NTD), shift, scale))


class Branch(nn.Module):
    """Per-target-kind parts: input embedder, position table, conditioning pooling.

    The 2D sin-cos position table is a trained parameter with `trainable_table` (the public
    code: its `pos_embed_{view,bev}` are `nn.Parameter(requires_grad=False)` in
    `denoiser_dit_multi.py` lines 179 and 190, then `train_3d.py` line 1791-1794 sets
    `requires_grad_(True)` on every `mm_inv_projector` parameter), else a fixed buffer. The
    state-dict key is `pos_embed` either way."""

    def __init__(
        self,
        grid: int,
        channels: int,
        width: int,
        cond_features: int,
        pool_heads: int,
        trainable_table: bool = False,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.x_embedder = nn.Linear(channels, width)
        table = get_2d_sincos_pos_embed(width, grid, base_size=grid, output_type="pt").float()
        if trainable_table:
            self.pos_embed = nn.Parameter(table)
        else:
            self.register_buffer("pos_embed", table)
        self.pooling = AttentionPooling(cond_features, width, grid * grid, pool_heads)


class Denoiser(nn.Module):
    """Predicts the diffusion target for latent grids [N, C, g, g] of a named branch."""

    def __init__(
        self,
        *,
        channels: int,
        width: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        cond_features: int,
        grids: dict[str, int],
        pool_heads: int,
        init: str = "adaln-zero",
        trainable_tables: bool = False,
    ) -> None:
        super().__init__()
        if init not in DENOISER_INITS:
            raise ValueError(f"denoiser init must be one of {DENOISER_INITS}, got {init!r}")
        self.channels = channels
        self.branches = nn.ModuleDict(
            {
                name: Branch(grid, channels, width, cond_features, pool_heads, trainable_tables)
                for name, grid in grids.items()
            }
        )
        self.time_proj = Timesteps(TIME_FREQ_DIM, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.t_embedder = TimestepEmbedding(TIME_FREQ_DIM, width)
        self.blocks = nn.ModuleList(DiTBlock(width, num_heads, mlp_ratio) for _ in range(depth))
        self.final_layer = FinalLayer(width, channels)
        if init == "adaln-zero":
            self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT initialisation: xavier Linears, N(0, 0.02) for conditioning paths, adaLN-zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for branch in self.branches.values():
            for linear in (branch.pooling.k, branch.pooling.v, branch.pooling.out):
                nn.init.normal_(linear.weight, std=0.02)
        nn.init.normal_(self.t_embedder.linear_1.weight, std=0.02)
        nn.init.normal_(self.t_embedder.linear_2.weight, std=0.02)
        zeroed = [block.adaLN_modulation[-1] for block in self.blocks]
        zeroed += [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for linear in zeroed:
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self, x_NCHW: torch.Tensor, t_N: torch.Tensor, cond_NTD: torch.Tensor, branch: str
    ) -> torch.Tensor:
        """Noisy latents [N, C, g, g], timesteps [N], pooled condition [N, g*g, width]
        -> prediction [N, C, g, g]."""
        parts = self.branches[branch]
        n, _, h, w = x_NCHW.shape
        if (h, w) != (parts.grid, parts.grid) or x_NCHW.shape[1] != self.channels:
            raise ValueError(
                f"{branch} latents must be [N, {self.channels}, {parts.grid}, {parts.grid}], "
                f"got {tuple(x_NCHW.shape)}"
            )
        dtype = parts.x_embedder.weight.dtype
        x = parts.x_embedder(x_NCHW.to(dtype).flatten(2).transpose(1, 2))
        x = x + parts.pos_embed.to(dtype)
        t_emb = self.t_embedder(self.time_proj(t_N).to(dtype))
        c = t_emb.unsqueeze(1) + cond_NTD
        for block in self.blocks:
            x = block(x, c)
        out = self.final_layer(x, c)
        return out.transpose(1, 2).reshape(n, self.channels, h, w)
