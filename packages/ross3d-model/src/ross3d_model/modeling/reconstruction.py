"""Reconstructive losses: cross-view (masked frames) and global-view (BEV) denoising of VAE
latent tokens, conditioned on the LLM's last-layer hidden states at the visual positions.

Cross-view conditioning (``conditioning``):
- ``"visible-pooled"`` (public code): per sample, one condition pooled from the tokens of all
  visible views; every masked target of that sample shares it (nothing says which view is
  asked for).
- ``"per-target"``: the condition of masked view k is pooled from the visible views' tokens
  *plus view k's own tokens* (mask-token states that carry k's 3D position encoding), so the
  denoiser knows which view to reconstruct.
Precision (``compute_dtype``): "float32" (public code, ``ross3d_arch.py`` ~1124-1135 and
~1253-1264: the denoiser under ``torch.amp.autocast('cuda', dtype=torch.float32)`` with
``.float()`` inputs) runs pooling and denoiser in float32 whatever the parameter dtype and any
outer bf16 autocast (on CUDA by a float32 autocast; on CPU, which has no float32 autocast, by
switching outer autocast off, so parameters' dtype decides); "param" runs them like the rest of
the model (bf16 with bf16 parameters or an outer bf16 autocast).

Each masked view is denoised ``view_repeats`` times with independent timesteps and noise
(public: ``V // num_masked`` = 4 at 32 views and 25 %); the loss is the mean squared error over
all repeated targets. BEV: condition pooled from all visible views, one target per sample, the
squared error averaged over valid latent cells only (see ``latents.bev_valid_cells``).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from ross3d_model.configuration.parts import ReconstructionConfig
from ross3d_model.modeling.denoiser import Denoiser


class Reconstructor(nn.Module):
    """The denoiser plus the two losses. Only enabled branches get parameters."""

    def __init__(self, cfg: ReconstructionConfig, llm_hidden_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        grids = {}
        if cfg.enable_cross_view:
            grids["view"] = cfg.view_grid
        if cfg.enable_bev:
            grids["bev"] = cfg.bev_grid
        if not grids:
            raise ValueError("Reconstructor needs enable_cross_view or enable_bev")
        self.denoiser = Denoiser(
            channels=cfg.latent_channels,
            width=cfg.width,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            cond_features=llm_hidden_size,
            grids=grids,
            pool_heads=cfg.pool_heads,
            init=cfg.denoiser_init,
            trainable_tables=cfg.position_tables == "trainable",
        )
        self.scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type=cfg.prediction,
        )

    def view_loss(
        self,
        hidden_BVTD: torch.Tensor,
        masked_BV: torch.Tensor,
        view_latents: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cross-view loss (scalar). A batch without masked views gives a zero connected to the
        hidden states (the denoiser's view parameters then get no gradient, as on the steps
        where the cross-view loss is off)."""
        pooling = self._branch("view", self.cfg.enable_cross_view).pooling
        b, v, t, _ = self._check_hidden(hidden_BVTD, masked_BV, self.cfg.view_grid)
        if view_latents.shape[:2] != (b, v):
            raise ValueError(f"view_latents must start with [{b}, {v}], got {view_latents.shape}")
        if not masked_BV.any():
            return self._zero_loss(hidden_BVTD)
        visible_BV = ~masked_BV
        _require_visible(visible_BV)
        tokens = self._condition_input(hidden_BVTD.flatten(1, 2))
        sample_idx, view_idx = masked_BV.nonzero(as_tuple=True)
        with self.precision(hidden_BVTD.device):
            if self.cfg.conditioning == "visible-pooled":
                cond = pooling(tokens, visible_BV.repeat_interleave(t, dim=1))[sample_idx]
            else:
                readable = visible_BV[sample_idx].clone()
                readable[torch.arange(len(view_idx), device=readable.device), view_idx] = True
                cond = pooling(tokens, readable.repeat_interleave(t, dim=1), rows_M=sample_idx)
        repeats = self.cfg.view_repeats
        x0 = view_latents[sample_idx, view_idx].repeat(repeats, 1, 1, 1)
        cond = cond.repeat(repeats, 1, 1)
        x_t, timesteps, target = self.noised(x0, generator)
        with self.precision(hidden_BVTD.device):
            pred = self.denoiser(x_t, timesteps, cond, "view")
        return F.mse_loss(pred.float(), target.float())

    def bev_loss(
        self,
        hidden_BVTD: torch.Tensor,
        visible_BV: torch.Tensor,
        bev_latents: torch.Tensor,
        bev_valid: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Global-view loss (scalar): squared error averaged over valid cells and channels;
        all cells void -> 0, still connected to the graph."""
        pooling = self._branch("bev", self.cfg.enable_bev).pooling
        b, _, t, _ = self._check_hidden(hidden_BVTD, visible_BV, self.cfg.view_grid)
        grid = self.cfg.bev_grid
        if bev_latents.shape != (b, self.cfg.latent_channels, grid, grid):
            raise ValueError(
                f"bev_latents must be [{b}, C, {grid}, {grid}], got {bev_latents.shape}"
            )
        if bev_valid.shape != (b, grid, grid) or bev_valid.dtype != torch.bool:
            raise ValueError(f"bev_valid must be bool [{b}, {grid}, {grid}], got {bev_valid.shape}")
        _require_visible(visible_BV)
        tokens = self._condition_input(hidden_BVTD.flatten(1, 2))
        x_t, timesteps, target = self.noised(bev_latents, generator)
        with self.precision(hidden_BVTD.device):
            cond = pooling(tokens, visible_BV.repeat_interleave(t, dim=1))
            pred = self.denoiser(x_t, timesteps, cond, "bev")
        weight = bev_valid.unsqueeze(1).to(torch.float32)
        squared = (pred.float() - target.float()).square() * weight
        count = weight.sum() * self.cfg.latent_channels
        return squared.sum() / count.clamp_min(1.0)

    def noised(
        self, x0_NCHW: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Independent t ~ U{0..T-1} and noise per item -> (x_t, t, regression target)."""
        n = x0_NCHW.shape[0]
        draw_device = x0_NCHW.device if generator is None else generator.device
        timesteps = torch.randint(
            0, self.cfg.num_train_timesteps, (n,), generator=generator, device=draw_device
        ).to(x0_NCHW.device)
        x0 = x0_NCHW.float()
        noise = torch.randn(x0.shape, generator=generator, device=draw_device).to(x0.device)
        x_t = self.scheduler.add_noise(x0, noise, timesteps)
        if self.cfg.prediction == "epsilon":
            target = noise
        elif self.cfg.prediction == "v_prediction":
            target = self.scheduler.get_velocity(x0, noise, timesteps)
        else:
            target = x0
        return x_t, timesteps, target

    def precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The context pooling and denoiser run in (`compute_dtype`, module docstring)."""
        if self.cfg.compute_dtype == "param":
            return contextlib.nullcontext()
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float32)
        return torch.autocast(device.type, enabled=False)

    def _condition_input(self, tokens_BND: torch.Tensor) -> torch.Tensor:
        """Hidden states as the pooling reads them: float32 in "float32" mode (public `.float()`)."""
        return tokens_BND.float() if self.cfg.compute_dtype == "float32" else tokens_BND

    def _branch(self, name: str, enabled: bool):
        if not enabled:
            raise ValueError(f"the {name} reconstruction branch is disabled in the config")
        return self.denoiser.branches[name]

    def _check_hidden(self, hidden_BVTD: torch.Tensor, mask_BV: torch.Tensor, grid: int):
        if hidden_BVTD.ndim != 4 or hidden_BVTD.shape[2] != grid * grid:
            raise ValueError(
                f"hidden states must be [B, V, {grid * grid}, D], got {tuple(hidden_BVTD.shape)}"
            )
        if mask_BV.shape != hidden_BVTD.shape[:2] or mask_BV.dtype != torch.bool:
            raise ValueError(
                f"view mask must be bool {tuple(hidden_BVTD.shape[:2])}, got "
                f"{mask_BV.dtype} {tuple(mask_BV.shape)}"
            )
        return hidden_BVTD.shape

    def _zero_loss(self, hidden_BVTD: torch.Tensor) -> torch.Tensor:
        # 0 + (-0.0) = +0.0: a clean zero whatever the sign of the sum
        return torch.zeros((), device=hidden_BVTD.device) + hidden_BVTD.sum().float() * 0.0


def _require_visible(visible_BV: torch.Tensor) -> None:
    empty = (~visible_BV.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"samples {empty} have no visible view to condition on")
