"""The per-clip caches training reads (format: ``ross3d_data.cache.store``).

* ``bev_latents`` (written here, by ``ross3d-model cache-latents``): per clip, the frozen VAE's
  latent ``mean`` and ``std`` (float32 [C_lat, h, w], before shift/scale; 16x54x54 at 432 px)
  of the clip's BEV image. Training then draws ``mean + std * noise`` exactly as the VAE's own
  ``latent_dist.sample`` does (``LatentTokenizer.encode_bev(moments=...)``), so ``sample`` mode
  has the distribution of encoding every step (the same values for the same generator, up to
  the VAE's dtype) without running the VAE; ``mean`` mode uses the mean.
* ``view_latents`` (optional, ``cache-latents --view-latents``): the same for every view of a clip
  ([V, C_lat, 27, 27] at 216 px, ~3 MB per 32-view clip); the cross-view loss then draws the
  masked views' latents from them (``LatentTokenizer.encode_views(moments=...)``).
* ``patch_masks`` (written by ``ross3d-data cache-clips``, ``ross3d_data.cache.patch_masks``): the
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
from ross3d_benchmarks import GROUNDING_TASKS
from ross3d_data.cache.patch_masks import KIND as MASK_KIND
from ross3d_data.cache.patch_masks import PatchMaskParams, clip_arrays, open_patch_masks, read_masks
from ross3d_data.cache.store import (
    ClipCacheReader,
    cache_path,
    fingerprint,
    shard_source_digest,
    write_cache,
)

from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.configuration.parts import VaeConfig
from ross3d_model.modeling.latents import LatentTokenizer

BEV_KIND = "bev_latents"
VIEW_KIND = "view_latents"
FIELDS = {BEV_KIND: "bev_moments", VIEW_KIND: "view_moments"}  # example / batch keys


def latent_params(vae: VaeConfig, kind: str) -> dict:
    """The VAE config values a cached latent of ``kind`` depends on (shift/scale, the even
    resize and the BEV validity rule are applied after the cache, so they are not among them)."""
    params = {
        "pretrained": vae.pretrained,
        "subfolder": vae.subfolder if vae.pretrained is not None else None,
        "latent_channels": vae.latent_channels,
        "size": vae.bev_size if kind == BEV_KIND else vae.view_size,
        "antialias": vae.antialias,
        "dtype": "float32",
    }
    if kind == BEV_KIND and vae.bev_resize != "square":  # square: the keys of older caches
        params["bev_resize"] = vae.bev_resize
    if vae.pretrained is None:
        params.update(
            tiny_block_out_channels=list(vae.tiny_block_out_channels),
            tiny_norm_num_groups=vae.tiny_norm_num_groups,
            tiny_seed=vae.tiny_seed,
        )
    return params


def latent_inputs(kind: str, clip) -> dict[str, np.ndarray]:
    """The arrays of a decoded clip a cached latent of ``kind`` is computed from."""
    if kind == BEV_KIND:
        return {"bev": np.ascontiguousarray(clip.bev_HW3, dtype=np.uint8)}
    return {"images": np.ascontiguousarray(clip.images_VSS3, dtype=np.uint8)}


def mask_params(cfg: Ross3DConfig) -> PatchMaskParams:
    """The patch-mask params of a model config (what its grounding computes)."""
    g = cfg.grounding
    return PatchMaskParams(cfg.vision.grid, cfg.vision.patch_size, g.min_inside_fraction,
                           g.patch_depth)  # fmt: skip


def _rebuild_hint(shard_dir: Path, kind: str) -> str:
    flag = " --view-latents" if kind == VIEW_KIND else ""
    return (
        f"rebuild it with `ross3d-model cache-latents --config <the train config> "
        f"--shards {shard_dir}{flag}` (or delete it: the VAE then encodes every step)"
    )


def _moments(tokenizer: LatentTokenizer, kind: str, inputs: list[dict], device: str):
    """(mean, std) of a batch of clips: [N, C, h, w] (BEV) or [N, V, C, h, w] (views)."""
    if kind == BEV_KIND:
        images = torch.stack([torch.from_numpy(i["bev"]).permute(2, 0, 1) for i in inputs])
        return tokenizer.bev_moments(images.to(device))
    images = torch.stack([torch.from_numpy(i["images"]).permute(0, 3, 1, 2) for i in inputs])
    return tokenizer.view_moments(images.to(device))


@torch.no_grad()
def cache_latents(
    shard_dir: str | Path,
    vae_cfg: VaeConfig,
    kind: str = BEV_KIND,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Encode every clip's BEV (``kind="bev_latents"``) or views (``"view_latents"``) once with
    the float32 VAE, ``batch_size`` clips per call; writes ``clip-cache/<kind>.h5``."""
    from ross3d_data.shards.reader import ShardReader

    if kind not in FIELDS:
        raise ValueError(f"kind must be one of {sorted(FIELDS)}, got {kind!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    reader = ShardReader(shard_dir)
    tokenizer = LatentTokenizer(vae_cfg).to(device)
    params = latent_params(vae_cfg, kind)

    def entries():
        for start in range(0, len(reader.keys), batch_size):
            keys = reader.keys[start : start + batch_size]
            inputs = [latent_inputs(kind, reader.clip(k)) for k in keys]
            mean, std = _moments(tokenizer, kind, inputs, device)
            for i, key in enumerate(keys):
                arrays = {"mean": mean[i].cpu().numpy(), "std": std[i].cpu().numpy()}
                yield key, fingerprint(kind, params, inputs[i]), arrays
                if progress is not None:
                    progress(key)

    path = cache_path(shard_dir, kind)
    write_cache(path, kind, params, shard_source_digest(reader.manifest), entries())
    return path


@dataclass
class ClipCaches:
    """The per-clip caches in use (None: not cached, computed per step)."""

    masks: ClipCacheReader | None = None
    bev: ClipCacheReader | None = None
    views: ClipCacheReader | None = None

    @classmethod
    def open(cls, reader, cfg: Ross3DConfig) -> ClipCaches:
        """Open the caches the folder of ``reader`` (a ShardReader) has and the config uses;
        StaleCacheError if one does not match."""
        folder = reader.folder
        masks = None
        if cache_path(folder, MASK_KIND).is_file():
            masks = open_patch_masks(folder, mask_params(cfg))
        rc = cfg.reconstruction
        latents = {}
        for kind, used in ((BEV_KIND, rc.enable_bev), (VIEW_KIND, rc.enable_cross_view)):
            path = cache_path(folder, kind)
            if used and path.is_file():
                latents[kind] = ClipCacheReader(
                    path, kind, latent_params(cfg.vae, kind), shard_source_digest(reader.manifest),
                    reader.keys, _rebuild_hint(folder, kind),
                )  # fmt: skip
        return cls(masks, latents.get(BEV_KIND), latents.get(VIEW_KIND))

    def attach(self, key: str, clip, example: dict) -> None:
        """Add the cached values of clip ``key`` (a decoded ``Clip``) to ``example``:
        ``in_box`` (grounding examples), ``bev_moments`` [2, C, h, w] and ``view_moments``
        [V, 2, C, h, w] (mean, std)."""
        instruction = example["instruction"]
        if self.masks is not None and instruction and instruction["task"] in GROUNDING_TASKS:
            example["in_box"] = torch.from_numpy(read_masks(self.masks, key, clip_arrays(clip)))
        for kind, cache in ((BEV_KIND, self.bev), (VIEW_KIND, self.views)):
            if cache is not None:
                got = cache.read(key, latent_inputs(kind, clip))
                axis = 0 if kind == BEV_KIND else 1
                example[FIELDS[kind]] = torch.from_numpy(np.stack([got["mean"], got["std"]], axis))


def cached_fields(examples: list[dict]) -> dict:
    """Batch fields from cached values: ``bev_moments`` [B, 2, C, h, w] and ``view_moments``
    [B, V, 2, C, h, w] when every example has them (else the model runs the VAE)."""
    out = {}
    for field in FIELDS.values():
        if examples and all(field in ex for ex in examples):
            out[field] = torch.stack([ex[field] for ex in examples])
    return out
