"""The per-clip caches training reads (format: ``ross3d_data.clip_cache``).

* ``bev_latents`` (written here, by ``ross3d-model cache-latents``): per clip, the frozen VAE's
  latent ``mean`` and ``std`` (float32 [C_lat, h, w], before shift/scale; 16x54x54 at 432 px)
  of the clip's BEV image. Training then draws ``mean + std * noise`` exactly as the VAE's own
  ``latent_dist.sample`` does (``LatentTokenizer.encode_bev(moments=...)``), so ``sample`` mode
  has the distribution of encoding every step (the same values for the same generator, up to
  the VAE's dtype) without running the VAE; ``mean`` mode uses the mean.
* ``patch_masks`` (written by ``ross3d-data cache-clips``, ``ross3d_data.patch_masks``): the
  grounding patch masks of every GT box of a clip, used instead of computing them per
  instruction.

:class:`ClipCaches` opens the caches a shard folder has and checks them against the model
config at open (a stale one raises ``StaleCacheError`` with the command that rebuilds it); a
cache that does not exist is simply not used (the values are computed per step, as without
caches). :meth:`ClipCaches.attach` adds the cached values to a decoded example; the collate
(``batch.collate_examples``) stacks them with :func:`cached_fields`.

The VAE is identified by its config (hub id or path, subfolder, tiny-VAE fields): after
replacing the weights under an unchanged path, rebuild the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ross3d_data.clip_cache import (
    ClipCacheReader,
    cache_path,
    fingerprint,
    shard_source_digest,
    write_cache,
)
from ross3d_data.patch_masks import KIND as MASK_KIND
from ross3d_data.patch_masks import PatchMaskParams, open_patch_masks, read_masks
from ross3d_eval.benchmarks import GROUNDING_TASKS

from ross3d_model.config import Ross3DConfig
from ross3d_model.latents import LatentTokenizer, VaeConfig

BEV_KIND = "bev_latents"
MOMENTS_KEY = "bev_moments"  # example / batch key: float32 [(B,) 2, C_lat, h, w]


def bev_params(vae: VaeConfig) -> dict:
    """The VAE config values a BEV latent depends on (shift/scale and the validity rule are
    applied after the cache, so they are not among them)."""
    params = {
        "pretrained": vae.pretrained,
        "subfolder": vae.subfolder if vae.pretrained is not None else None,
        "latent_channels": vae.latent_channels,
        "bev_size": vae.bev_size,
        "antialias": vae.antialias,
        "dtype": "float32",
    }
    if vae.pretrained is None:
        params.update(
            tiny_block_out_channels=list(vae.tiny_block_out_channels),
            tiny_norm_num_groups=vae.tiny_norm_num_groups,
            tiny_seed=vae.tiny_seed,
        )
    return params


def bev_inputs(bev_HW3: np.ndarray) -> dict[str, np.ndarray]:
    return {"bev": np.ascontiguousarray(bev_HW3, dtype=np.uint8)}


def mask_params(cfg: Ross3DConfig) -> PatchMaskParams:
    """The patch-mask params of a model config (what its grounding computes)."""
    g = cfg.grounding
    return PatchMaskParams(cfg.vision.grid, cfg.vision.patch_size, g.min_inside_fraction,
                           g.patch_depth)  # fmt: skip


def _rebuild_hint(shard_dir: Path) -> str:
    return (
        f"rebuild it with `ross3d-model cache-latents --config <the train config> "
        f"--shards {shard_dir}` (or delete it: the BEV is then encoded every step)"
    )


@torch.no_grad()
def cache_bev_latents(
    shard_dir: str | Path,
    vae_cfg: VaeConfig,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Encode every clip's BEV once (float32 VAE) and write ``clip-cache/bev_latents.h5``."""
    from ross3d_data.reader import ShardReader

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    reader = ShardReader(shard_dir)
    tokenizer = LatentTokenizer(vae_cfg).to(device)
    params = bev_params(vae_cfg)

    def entries():
        for start in range(0, len(reader.keys), batch_size):
            keys = reader.keys[start : start + batch_size]
            bevs = [bev_inputs(reader.clip(k).bev_HW3) for k in keys]
            images = torch.stack([torch.from_numpy(b["bev"]).permute(2, 0, 1) for b in bevs])
            mean, std = tokenizer.bev_moments(images.to(device))
            for i, key in enumerate(keys):
                arrays = {"mean": mean[i].cpu().numpy(), "std": std[i].cpu().numpy()}
                yield key, fingerprint(BEV_KIND, params, bevs[i]), arrays
                if progress is not None:
                    progress(key)

    path = cache_path(shard_dir, BEV_KIND)
    write_cache(path, BEV_KIND, params, shard_source_digest(reader.manifest), entries())
    return path


@dataclass
class ClipCaches:
    """The per-clip caches in use (None: not cached, computed per step)."""

    masks: ClipCacheReader | None = None
    bev: ClipCacheReader | None = None

    @classmethod
    def open(cls, reader, cfg: Ross3DConfig) -> ClipCaches:
        """Open the caches the folder of ``reader`` (a ShardReader) has; StaleCacheError if
        one does not match."""
        folder = reader.folder
        masks = bev = None
        if cache_path(folder, MASK_KIND).is_file():
            masks = open_patch_masks(folder, mask_params(cfg))
        if cfg.reconstruction.enable_bev and cache_path(folder, BEV_KIND).is_file():
            bev = ClipCacheReader(
                cache_path(folder, BEV_KIND), BEV_KIND, bev_params(cfg.vae),
                shard_source_digest(reader.manifest), reader.keys,
                _rebuild_hint(folder),
            )  # fmt: skip
        return cls(masks, bev)

    def attach(self, key: str, clip, example: dict) -> None:
        """Add the cached values of clip ``key`` (a decoded ``Clip``) to ``example``:
        ``in_box`` (grounding examples) and ``bev_moments``."""
        instruction = example["instruction"]
        if self.masks is not None and instruction and instruction["task"] in GROUNDING_TASKS:
            arrays = {**clip.arrays, "depth_mm": clip.depth_mm_VSS}
            example["in_box"] = torch.from_numpy(read_masks(self.masks, key, arrays))
        if self.bev is not None:
            cached = self.bev.read(key, bev_inputs(clip.bev_HW3))
            example[MOMENTS_KEY] = torch.from_numpy(np.stack([cached["mean"], cached["std"]]))


def cached_fields(examples: list[dict]) -> dict:
    """Batch fields from cached values: ``bev_moments`` [B, 2, C, h, w] when every example
    has them ({} otherwise: the model encodes the BEV)."""
    if examples and all(MOMENTS_KEY in ex for ex in examples):
        return {MOMENTS_KEY: torch.stack([ex[MOMENTS_KEY] for ex in examples])}
    return {}
