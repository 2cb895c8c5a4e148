"""Reconstruction targets: a frozen FLUX-style VAE turns views and the BEV image into latent
token grids aligned with the LLM's visual tokens.

Views: uint8 RGB -> [-1, 1] -> resize to ``view_size`` (216) -> VAE latent 27x27x16 ->
bilinear resize to the next even size 28x28 (as the public code) -> 2x2 space-to-channel ->
14x14x64, one latent token per visual token. BEV: 432 -> 54x54x16 -> 27x27x64.
``z = (latent - shift_factor) * scaling_factor``. ``antialias``: the public code resizes the
384 view to 216 bilinearly *without* antialiasing (``ross3d_arch.py`` ~1105, the reference value
False); True low-passes first so fine texture does not alias into the target. The public code
takes a *sample* of the latent distribution (``latent_mode="sample"``, the default here);
``"mean"`` uses its mean.

Space-to-channel is ``torch.nn.functional.pixel_unshuffle(z, 2)``: output channel
``4*c + 2*p1 + p2`` holds input pixel ``(2*h + p1, 2*w + p2)`` of channel c, exactly the public
``unfold(2, 2, 2).unfold(3, 2, 2)`` + ``'b c h w p1 p2 -> b (c p1 p2) h w'``.

BEV validity (``bev_valid_rule``): which latent cells the BEV loss averages over.
- ``"bilinear-mean"`` (public code, ``ross3d_arch.py`` ~1250-1251): the BEV image (0..1) is
  resized bilinearly (no antialiasing) to the latent grid, averaged over channels, and a cell is
  valid when that value is > 0. At 432 -> 27 this reads only the 2x2 pixels at each cell's
  centre.
- ``"block"``: a BEV pixel is *void* when all three channels are 0 (the renderer's black
  background); a cell covers the block of pixels ``adaptive_avg_pool2d`` assigns to it (16x16 at
  432 -> 27) and is valid when its non-void fraction is > ``bev_min_valid_fraction`` (0: at least
  one non-void pixel).

BEV target image (``bev_resize``, :func:`bev_target`, before the VAE, the validity rule and the
latent cache): ``"square"`` resizes the shard's BEV to ``bev_size`` x ``bev_size`` (our renders
are square and hold the whole scene); ``"crop-4:3"`` is the public rule for its released renders
(``video_utils.py`` ~327-343, strategy "center_crop"): PIL resize (bicubic, PIL's default) to
``int(W * bev_size / H)`` x ``bev_size`` with W x H = 640 x 480, the *depth map's* size
(``world_coords.shape``, ~286-287), i.e. 576 x 432, then the centre ``bev_size`` columns
(left = 72): a square image is stretched 4:3 and loses its left and right eighths.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn

from ross3d_model.configuration.parts import BEV_VALID_RULES, VaeConfig

FLUX_SCALING_FACTOR = 0.3611
FLUX_SHIFT_FACTOR = 0.1159


def build_vae(cfg: VaeConfig, load_weights: bool = True) -> AutoencoderKL:
    """The real VAE from ``cfg.pretrained`` or a tiny random one (FLUX layout: no quant convs).
    ``load_weights=False`` (the model's component builder) builds the real VAE from its config
    alone (a hub id downloads only config.json): ``weights.build`` assigns its weights
    memory-mapped afterwards."""
    if cfg.pretrained is not None:
        kwargs = {} if cfg.subfolder is None else {"subfolder": cfg.subfolder}
        if load_weights:
            vae = AutoencoderKL.from_pretrained(cfg.pretrained, **kwargs)
        else:
            try:
                vae_config = AutoencoderKL.load_config(cfg.pretrained, **kwargs)
            except OSError as err:  # diffusers reports a missing/unreachable config as OSError
                raise ValueError(f"{cfg.pretrained}: cannot read the VAE config: {err}") from err
            vae = AutoencoderKL.from_config(vae_config)
    else:
        channels = tuple(cfg.tiny_block_out_channels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.tiny_seed)
            vae = AutoencoderKL(
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=channels,
                layers_per_block=1,
                latent_channels=cfg.latent_channels,
                norm_num_groups=cfg.tiny_norm_num_groups,
                scaling_factor=FLUX_SCALING_FACTOR,
                shift_factor=FLUX_SHIFT_FACTOR,
                use_quant_conv=False,
                use_post_quant_conv=False,
            )
    if vae.config.latent_channels != cfg.latent_channels:
        raise ValueError(
            f"VAE {cfg.pretrained} has {vae.config.latent_channels} latent channels, "
            f"config says {cfg.latent_channels}"
        )
    return vae


def space_to_channel(z_BCHW: torch.Tensor) -> torch.Tensor:
    """[B, C, 2H, 2W] -> [B, 4C, H, W], channel 4c + 2p1 + p2 = pixel (2h + p1, 2w + p2)."""
    return F.pixel_unshuffle(z_BCHW, 2)


def channel_to_space(z_BCHW: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`space_to_channel` (to turn predictions back into VAE latents)."""
    return F.pixel_shuffle(z_BCHW, 2)


def bev_valid_cells(
    bev_B3HW: torch.Tensor, grid: int, rule: str = "block", min_fraction: float = 0.0
) -> torch.Tensor:
    """[B, grid, grid] bool: the valid latent cells of a BEV image by ``rule`` (module
    docstring; ``min_fraction`` is the "block" rule's threshold)."""
    if rule == "bilinear-mean":
        small = F.interpolate(bev_B3HW.float(), size=(grid, grid), mode="bilinear")
        return small.mean(dim=1) > 0
    if rule != "block":
        raise ValueError(f"bev valid rule must be one of {BEV_VALID_RULES}, got {rule!r}")
    non_void = (bev_B3HW != 0).any(dim=1, keepdim=True).float()
    fraction = F.adaptive_avg_pool2d(non_void, grid)[:, 0]
    return fraction > min_fraction


DEPTH_WH = (640, 480)  # the ScanNet depth map whose shape sets the public BEV resize


def bev_target(bev_B3HW: torch.Tensor, size: int, rule: str) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> the uint8 image the BEV target is encoded from (module docstring):
    unchanged for "square" (the VAE input resize makes it size x size), the public resize and
    centre crop for "crop-4:3" (PIL on the CPU, as the public data loader)."""
    if rule == "square":
        return bev_B3HW
    if rule != "crop-4:3":
        raise ValueError(f"unknown bev_resize {rule!r}")
    from PIL import Image

    width = int(DEPTH_WH[0] * (size / DEPTH_WH[1]))
    left = (width - size) // 2
    out = []
    for image in bev_B3HW.permute(0, 2, 3, 1).cpu().numpy():
        resized = Image.fromarray(image).resize((width, size), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.array(resized.crop((left, 0, left + size, size)))))
    return torch.stack(out).permute(0, 3, 1, 2).contiguous().to(bev_B3HW.device)


class LatentTokenizer(nn.Module):
    """Frozen VAE encoder producing reconstruction targets (no gradients, always eval mode)."""

    def __init__(self, vae_cfg: VaeConfig, load_weights: bool = True) -> None:
        """``load_weights``: read ``vae_cfg.pretrained``'s weights here (standalone use, e.g.
        the latent caches); the model passes False and its weights layer assigns them."""
        super().__init__()
        self.cfg = vae_cfg
        self.vae = build_vae(vae_cfg, load_weights)
        self.vae.requires_grad_(False)
        self.vae.eval()
        vae_scale = self.vae.config.scaling_factor
        vae_shift = self.vae.config.shift_factor
        self.scaling_factor = float(
            vae_scale if vae_cfg.scaling_factor is None else vae_cfg.scaling_factor
        )
        self.shift_factor = float(
            (vae_shift or 0.0) if vae_cfg.shift_factor is None else vae_cfg.shift_factor
        )

    def train(self, mode: bool = True) -> LatentTokenizer:
        """The VAE stays in eval mode whatever the parent model does."""
        super().train(mode)
        self.vae.eval()
        return self

    @torch.no_grad()
    def encode_views(
        self,
        images_BV3SS: torch.Tensor,
        generator: torch.Generator | None = None,
        views_BV: torch.Tensor | None = None,
        moments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """uint8 [B, V, 3, S, S] -> float32 [B, V, 4*C_lat, g, g] (g = 14 at view_size 216).

        ``views_BV`` (bool, optional): encode only these views and leave zeros elsewhere; pass
        the masked views, the only ones ``Reconstructor.view_loss`` reads (the VAE is the
        largest part of the cross-view cost, see docs/architecture.md). ``moments``
        [B, V, 2, C_lat, h, w] (the per-clip cache's latent mean and std of the views,
        ``latent_cache``): no VAE call, drawn as the VAE's own ``sample`` draws them."""
        _check_uint8_images(images_BV3SS, ndim=5, name="images")
        b, v = images_BV3SS.shape[:2]
        if views_BV is None:
            views_BV = torch.ones(b, v, dtype=torch.bool)
        if views_BV.shape != (b, v) or views_BV.dtype != torch.bool:
            raise ValueError(f"views_BV must be bool [{b}, {v}], got {tuple(views_BV.shape)}")
        views_BV = views_BV.to(images_BV3SS.device)
        if not views_BV.any():
            grid = self.cfg.view_grid
            return torch.zeros(b, v, self.cfg.target_channels, grid, grid, device=views_BV.device)
        if moments is None:
            tokens = self._encode(images_BV3SS[views_BV], self.cfg.view_size, generator)
        else:
            chosen = moments.to(views_BV.device)[views_BV]  # [n, 2, C_lat, h, w]
            tokens = self._tokens(self._draw(chosen[:, 0], chosen[:, 1], generator))
        out = tokens.new_zeros(b, v, *tokens.shape[1:])
        out[views_BV] = tokens
        return out

    @torch.no_grad()
    def encode_bev(
        self,
        bev_B3HW: torch.Tensor,
        generator: torch.Generator | None = None,
        moments: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, 3, H, W] -> (latents [B, 4*C_lat, g, g], valid [B, g, g] bool), g = 27.
        ``moments`` [B, 2, C_lat, h, w] (the per-clip cache's latent mean and std of these
        images, ``latent_cache``): no VAE call, the latent is drawn from them as the VAE's own
        ``sample`` draws it (same generator -> same values)."""
        _check_uint8_images(bev_B3HW, ndim=4, name="bev")
        bev_B3HW = bev_target(bev_B3HW, self.cfg.bev_size, self.cfg.bev_resize)
        if moments is None:
            latents = self._encode(bev_B3HW, self.cfg.bev_size, generator)
        else:
            latents = self._tokens(self._draw(moments[:, 0], moments[:, 1], generator))
        valid = bev_valid_cells(
            bev_B3HW, latents.shape[-1], self.cfg.bev_valid_rule, self.cfg.bev_min_valid_fraction
        )
        return latents, valid

    @torch.no_grad()
    def bev_moments(self, bev_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and std (before shift/scale) float32 [B, C_lat, h, w] of BEV images:
        what ``ross3d-model cache-latents`` stores per clip."""
        _check_uint8_images(bev_B3HW, ndim=4, name="bev")
        bev_B3HW = bev_target(bev_B3HW, self.cfg.bev_size, self.cfg.bev_resize)
        dist = self._distribution(bev_B3HW, self.cfg.bev_size)
        return dist.mean.float(), dist.std.float()

    @torch.no_grad()
    def view_moments(self, images_BV3SS: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and std (before shift/scale and the even resize) float32
        [B, V, C_lat, h, w] of views: what ``ross3d-model cache-latents --view-latents`` stores."""
        _check_uint8_images(images_BV3SS, ndim=5, name="images")
        b, v = images_BV3SS.shape[:2]
        dist = self._distribution(images_BV3SS.flatten(0, 1), self.cfg.view_size)
        return dist.mean.float().unflatten(0, (b, v)), dist.std.float().unflatten(0, (b, v))

    def _distribution(self, images_N3HW: torch.Tensor, size: int):
        param = next(self.vae.parameters())
        x = images_N3HW.to(param.device, torch.float32) / 127.5 - 1.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=self.cfg.antialias)
        x = x.clamp(-1.0, 1.0).to(param.dtype)
        return self.vae.encode(x).latent_dist

    def _draw(self, mean: torch.Tensor, std: torch.Tensor, generator) -> torch.Tensor:
        """A latent from cached moments, drawn exactly as DiagonalGaussianDistribution.sample."""
        if self.cfg.latent_mode == "mean":
            return mean
        from diffusers.utils.torch_utils import randn_tensor

        noise = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + std * noise

    def _encode(
        self, images_N3HW: torch.Tensor, size: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        dist = self._distribution(images_N3HW, size)
        raw = dist.sample(generator) if self.cfg.latent_mode == "sample" else dist.mean
        return self._tokens(raw)

    def _tokens(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents -> shifted, scaled, even-sized, space-to-channel target tokens."""
        z = (raw.float() - self.shift_factor) * self.scaling_factor
        if z.shape[-1] % 2:
            # odd latent grid (27 at 216 px): resize to the next even size, as the public code
            z = F.interpolate(z, size=(z.shape[-2] + 1, z.shape[-1] + 1), mode="bilinear")
        return space_to_channel(z)


def _check_uint8_images(x: torch.Tensor, ndim: int, name: str) -> None:
    if x.dtype != torch.uint8 or x.ndim != ndim or x.shape[-3] != 3:
        raise ValueError(
            f"{name} must be uint8 with {ndim} dims and 3 channels at dim -3, "
            f"got {x.dtype} {tuple(x.shape)}"
        )
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} must be square, got {tuple(x.shape[-2:])}")
