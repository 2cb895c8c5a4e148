"""Configs of the reconstruction parts: the frozen VAE (targets), the denoiser + losses, and the
objective that weights the losses. Their modules (`modeling.latents`, `modeling.reconstruction`,
`modeling.objective`) import them from here, so a config loads without torch.

The allowed values of each choice field live here too; `modeling.denoiser` / `modeling.masking`
check their arguments against the same tuples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LATENT_MODES = ("sample", "mean")
BEV_VALID_RULES = ("bilinear-mean", "block")
BEV_RESIZES = ("square", "crop-4:3")
POSITION_TABLES = ("frozen", "trainable")
DENOISER_INITS = ("reference", "adaln-zero")
MASK_METHODS = ("random", "overlap-aware")
CONDITIONINGS = ("visible-pooled", "per-target")
COMPUTE_DTYPES = ("float32", "param")
PREDICTIONS = ("epsilon", "v_prediction", "sample")
LOSS_NAMES = ("lm", "cross_view", "bev", "grounding")
VAE_DOWNSAMPLE = 8  # the FLUX VAE (and the tiny one: 4 blocks) halves the image 3 times


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def latent_token_grid(image_size: int) -> int:
    """Latent tokens per side of an image of `image_size` pixels: the VAE's 8x latent, resized
    to the next even size, then 2x2 space-to-channel (216 -> 27 -> 28 -> 14; 432 -> 54 -> 27)."""
    return (image_size // VAE_DOWNSAMPLE + 1) // 2


@dataclass
class VaeConfig:
    """Where the frozen VAE comes from and how targets are made.

    ``pretrained`` = hub id or local path of a model folder (loaded with
    ``subfolder``; set ``subfolder=None`` for a plain VAE folder) or None for a tiny random
    AutoencoderKL built from the ``tiny_*`` fields (tests, no hub access). The tiny VAE keeps
    the 8x downsampling (4 blocks) so latent sizes match the real one. ``scaling_factor`` /
    ``shift_factor`` None = take them from the VAE's own config.
    """

    pretrained: str | None = None
    subfolder: str | None = "vae"
    latent_channels: int = 16  # channels of the VAE latent (FLUX: 16)
    # block widths of the tiny random VAE (pretrained null)
    tiny_block_out_channels: list[int] = field(default_factory=lambda: [8, 8, 16, 16])
    tiny_norm_num_groups: int = 4  # GroupNorm groups of the tiny VAE
    tiny_seed: int = 0  # init seed of the tiny VAE
    scaling_factor: float | None = None
    shift_factor: float | None = None
    view_size: int = 216  # side in pixels a view is resized to for the VAE (216 -> 14 x 14 tokens)
    bev_size: int = 432  # side in pixels of the BEV image for the VAE (432 -> 27 x 27 tokens)
    latent_mode: str = "sample"  # "sample" of the latent distribution, or its "mean"
    # with bev_valid_rule "block": a cell counts when its non-void pixel fraction exceeds this
    bev_min_valid_fraction: float = 0.0
    antialias: bool = False  # antialias when images are resized for the VAE
    # BEV cells the loss averages: "bilinear-mean" (public) or "block"
    bev_valid_rule: str = "bilinear-mean"
    # "square": the BEV image resized to bev_size x bev_size (our renders are square, the whole
    # scene); "crop-4:3": the public rule for its released renders (modeling.latents.bev_target)
    bev_resize: str = "square"

    def __post_init__(self) -> None:
        self.tiny_block_out_channels = list(self.tiny_block_out_channels)
        _check_choice("bev_valid_rule", self.bev_valid_rule, BEV_VALID_RULES)
        _check_choice("bev_resize", self.bev_resize, BEV_RESIZES)
        if self.bev_min_valid_fraction and self.bev_valid_rule != "block":
            raise ValueError('bev_min_valid_fraction only applies to bev_valid_rule "block"')
        _check_choice("latent_mode", self.latent_mode, LATENT_MODES)
        if len(self.tiny_block_out_channels) != 4:
            raise ValueError("tiny_block_out_channels needs 4 entries (8x downsampling)")
        if any(c % self.tiny_norm_num_groups for c in self.tiny_block_out_channels):
            raise ValueError("tiny_block_out_channels must be multiples of tiny_norm_num_groups")
        for name in ("view_size", "bev_size"):
            size = getattr(self, name)
            if size < 16 or size % VAE_DOWNSAMPLE:
                raise ValueError(f"{name} must be a multiple of 8 and >= 16, got {size}")
        if not 0.0 <= self.bev_min_valid_fraction < 1.0:
            raise ValueError("bev_min_valid_fraction must be in [0, 1)")
        if self.latent_channels < 1:
            raise ValueError("latent_channels must be >= 1")

    @property
    def view_grid(self) -> int:
        """Token grid of a view target (216 -> 27 -> 28 -> 14)."""
        return latent_token_grid(self.view_size)

    @property
    def bev_grid(self) -> int:
        """Token grid of the BEV target (432 -> 54 -> 27)."""
        return latent_token_grid(self.bev_size)

    @property
    def target_channels(self) -> int:
        """Channels of a target token: 2x2 space-to-channel of the VAE latent (16 -> 64)."""
        return 4 * self.latent_channels


@dataclass
class ReconstructionConfig:
    """Denoiser and reconstruction losses (`modeling.reconstruction`). `latent_channels`,
    `view_grid` and `bev_grid` must match the VAE targets and the visual token grid:
    `Ross3DConfig` checks them against `vae` and `vision` / `tokens`."""

    enable_cross_view: bool = True  # train the cross-view (masked views) reconstruction loss
    enable_bev: bool = True  # train the BEV reconstruction loss
    width: int = 1024  # denoiser width
    depth: int = 3  # denoiser blocks
    num_heads: int = 16  # denoiser attention heads
    mlp_ratio: float = 4.0  # denoiser MLP width / width
    latent_channels: int = 64  # after 2x2 space-to-channel of the 16 VAE channels
    view_grid: int = 14
    bev_grid: int = 27
    view_queries: int = 196  # pooling queries of the view branch (view_grid squared)
    bev_queries: int = 729  # pooling queries of the BEV branch (bev_grid squared)
    pool_heads: int = 16  # attention heads of the condition pooling
    view_repeats: int = 4  # each masked view is denoised this often (own timestep and noise)
    num_train_timesteps: int = 1000  # diffusion timesteps
    beta_schedule: str = "squaredcos_cap_v2"  # noise schedule (a diffusers DDPMScheduler name)
    prediction: str = "epsilon"  # the denoiser predicts "epsilon", "v_prediction" or the "sample"
    # "visible-pooled" (public) or "per-target" (modeling.reconstruction)
    conditioning: str = "visible-pooled"
    mask_ratio: float = 0.25  # share of a clip's views masked for cross-view reconstruction
    mask_choice: str = "random"  # masked views: "random" or "overlap-aware"
    # denoiser precision: "float32" (public) or "param" (the weights')
    compute_dtype: str = "float32"
    # Denoiser start (loading.py, docs/architecture.md "Reference switches"): the ROSS 2D
    # denoiser as the reference ships it (`mm_inv_projector.bin`; None = none), and the init of
    # what it does not cover: "reference" (PyTorch defaults) or "adaln-zero" (DiT's init).
    pretrained_denoiser: str | None = None
    denoiser_init: str = "adaln-zero"  # "reference" or "adaln-zero" (see pretrained_denoiser)
    # the view / BEV 2D sin-cos position tables: "trainable" as the public code trains them
    # (denoiser.Branch), "frozen" = fixed buffers
    position_tables: str = "frozen"

    def __post_init__(self) -> None:
        _check_choice("denoiser_init", self.denoiser_init, DENOISER_INITS)
        _check_choice("position_tables", self.position_tables, POSITION_TABLES)
        for name in ("width", "depth", "num_heads", "latent_channels", "view_grid", "bev_grid"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pool_heads", "view_repeats", "num_train_timesteps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.num_heads or self.width % self.pool_heads:
            raise ValueError(f"width {self.width} must be divisible by num_heads and pool_heads")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        for branch in ("view", "bev"):
            grid, queries = getattr(self, f"{branch}_grid"), getattr(self, f"{branch}_queries")
            if queries != grid**2:
                raise ValueError(
                    f"view/bev queries must equal the token count of their grid: "
                    f"reconstruction.{branch}_queries {queries} != "
                    f"reconstruction.{branch}_grid {grid} squared"
                )
        _check_choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        _check_choice("conditioning", self.conditioning, CONDITIONINGS)
        _check_choice("prediction", self.prediction, PREDICTIONS)
        _check_choice("mask_choice", self.mask_choice, MASK_METHODS)
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")


@dataclass
class ObjectiveConfig:
    """Loss weights (`modeling.objective.combine_losses`) and the cross-view schedule."""

    lm_weight: float = 1.0  # weight of the language-model loss in the total
    cross_view_weight: float = 1.0  # weight of the cross-view reconstruction loss
    bev_weight: float = 1.0  # weight of the BEV reconstruction loss
    grounding_weight: float = 1.0  # weight of the grounding loss
    cross_view_every: int = 4  # cross-view loss on every k-th optimiser step (public: 4)

    def __post_init__(self) -> None:
        for name in LOSS_NAMES:
            weight = self.weight(name)
            if not (math.isfinite(weight) and weight >= 0.0):
                raise ValueError(f"{name}_weight must be finite and >= 0, got {weight}")
        if isinstance(self.cross_view_every, bool) or not isinstance(self.cross_view_every, int):
            raise ValueError(f"cross_view_every must be an int, got {self.cross_view_every!r}")
        if self.cross_view_every < 1:
            raise ValueError(f"cross_view_every must be >= 1, got {self.cross_view_every}")

    def weight(self, name: str) -> float:
        weights = {
            "lm": self.lm_weight,
            "cross_view": self.cross_view_weight,
            "bev": self.bev_weight,
            "grounding": self.grounding_weight,
        }
        return float(weights[name])
