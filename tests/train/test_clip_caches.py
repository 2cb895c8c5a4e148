"""Training with the per-clip caches (grounding patch masks, BEV latent moments) on demo
shards: the same batches and losses as computing them every step; stale caches refused."""

import dataclasses
import shutil

import pytest
import torch
from ross3d_data.clip_cache import StaleCacheError
from ross3d_data.patch_masks import cache_patch_masks
from ross3d_model.config import load_config
from ross3d_model.latent_cache import ClipCaches, cache_bev_latents, mask_params
from ross3d_model.training.config import DataConfig
from ross3d_model.training.task import Ross3DTask


@pytest.fixture(scope="module")
def folders(demo_data, tmp_path_factory):
    """(plain copy of the demo shards, copy with both caches written)."""
    cfg = load_config("tiny")
    root = tmp_path_factory.mktemp("cached")
    plain = shutil.copytree(demo_data["shards"], root / "plain")
    cached = shutil.copytree(demo_data["shards"], root / "cached")
    cache_patch_masks(cached, mask_params(cfg))
    cache_bev_latents(cached, cfg.vae)
    return plain, cached


def _items(task, tasks=("scanrefer", "multi3drefer", "scanqa")):
    return [next(it for it in task.examples if it[1]["task"] == t) for t in tasks]


def test_cached_batches_and_losses_equal_computing_every_step(folders):
    cfg = load_config("tiny")
    plain = Ross3DTask(cfg, folders[0], DataConfig())
    cached = Ross3DTask(cfg, folders[1], DataConfig())
    assert plain.caches == ClipCaches()  # no cache files: nothing used
    assert cached.caches.masks is not None and cached.caches.bev is not None
    items = _items(plain)
    a, b = plain.collate(items, seed=1), cached.collate(items, seed=1)
    assert "bev_moments" not in a and b["bev_moments"].shape[:2] == (3, 2)
    for ga, gb in zip(a["grounding"][:2], b["grounding"][:2], strict=True):
        assert gb["in_box"].dtype == torch.bool and gb["in_box"].any()
        assert torch.equal(ga["in_box"], gb["in_box"])
    torch.manual_seed(0)
    model = cached.build_model().train()
    for step_items in (items[2:], items):  # a BEV-only batch and a mixed one
        a, b = plain.collate(step_items, seed=2), cached.collate(step_items, seed=2)
        la = model(a, generator=torch.Generator().manual_seed(3)).losses
        lb = model(b, generator=torch.Generator().manual_seed(3)).losses
        assert la["bev"] is not None
        for name, value in la.items():
            if value is not None:
                torch.testing.assert_close(lb[name], value, rtol=1e-5, atol=1e-6)


def test_stale_caches_are_refused_at_task_start(folders):
    cfg = load_config("tiny")
    other_vae = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, tiny_seed=1))
    with pytest.raises(StaleCacheError, match=r"bev_latents.*ross3d-model cache-latents"):
        Ross3DTask(other_vae, folders[1], DataConfig())
    g = dataclasses.replace(cfg.grounding, min_inside_fraction=0.25)
    with pytest.raises(StaleCacheError, match=r"patch_masks.*--min-inside-fraction 0.25"):
        Ross3DTask(dataclasses.replace(cfg, grounding=g), folders[1], DataConfig())
