"""Training with the per-clip caches (grounding patch masks, BEV latent moments) on demo
shards: the same batches and losses as computing them every step; stale caches refused."""

import dataclasses
import shutil

import pytest
import torch
from ross3d_data.cache.store import StaleCacheError
from ross3d_model.configuration.model import load_config
from ross3d_model.configuration.run import DataConfig
from ross3d_model.inputs.caches import ClipCaches, mask_params
from ross3d_model.training.task import Ross3DTask


@pytest.fixture(scope="module")
def folders(demo_data, tmp_path_factory):
    """(plain copy of the demo shards, copy with all three caches written by the two CLIs)."""
    from ross3d_data.cli import app as data_app
    from ross3d_model.cli import app as model_app
    from typer.testing import CliRunner

    p = mask_params(load_config("tiny"))
    root = tmp_path_factory.mktemp("cached")
    plain = shutil.copytree(demo_data["shards"], root / "plain")
    cached = shutil.copytree(demo_data["shards"], root / "cached")
    runner = CliRunner()
    r = runner.invoke(data_app, [
        "cache-clips", str(cached), "--grid", str(p.grid), "--patch-px", str(p.patch_px),
        "--min-inside-fraction", str(p.min_inside_fraction), "--patch-depth", p.patch_depth,
    ])  # fmt: skip
    assert r.exit_code == 0, r.output
    args = ["cache-latents", "--config", "tiny", "--shards", str(cached), "--views"]
    r = runner.invoke(model_app, [*args, "--batch-size", "1"])
    assert r.exit_code == 0, r.output
    assert "view_latents" in r.output and "bev_latents" in r.output
    return plain, cached


def _items(task, tasks=("scanrefer", "multi3drefer", "scanqa")):
    return [next(it for it in task.examples if it[1]["task"] == t) for t in tasks]


def test_cached_batches_and_losses_equal_computing_every_step(folders):
    cfg = load_config("tiny")
    plain = Ross3DTask(cfg, folders[0], DataConfig())
    cached = Ross3DTask(cfg, folders[1], DataConfig())
    assert plain.caches == ClipCaches()  # no cache files: nothing used
    assert None not in (cached.caches.masks, cached.caches.bev, cached.caches.views)
    items = _items(plain)
    a, b = plain.collate(items, seed=1), cached.collate(items, seed=1)
    assert "bev_moments" not in a and b["bev_moments"].shape[:2] == (3, 2)
    assert "view_moments" not in a and b["view_moments"].shape[:3] == (3, 4, 2)
    for ga, gb in zip(a["grounding"][:2], b["grounding"][:2], strict=True):
        assert gb["in_box"].dtype == torch.bool and gb["in_box"].any()
        assert torch.equal(ga["in_box"], gb["in_box"])
    torch.manual_seed(0)
    model = cached.build_model().train()
    for step_items, cross_view in ((items[2:], False), (items, False), (items, True)):
        a, b = plain.collate(step_items, seed=2), cached.collate(step_items, seed=2)
        la = model(a, cross_view=cross_view, generator=torch.Generator().manual_seed(3)).losses
        lb = model(b, cross_view=cross_view, generator=torch.Generator().manual_seed(3)).losses
        assert la["bev"] is not None and (la["cross_view"] is not None) is cross_view
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


def test_a_stale_cache_stops_train_with_a_clear_error(folders, tmp_path):
    from ross3d_data.cli import app as data_app
    from ross3d_model.cli import app as model_app
    from typer.testing import CliRunner

    stale = shutil.copytree(folders[0], tmp_path / "stale")
    runner = CliRunner()
    r = runner.invoke(data_app, ["cache-clips", str(stale), "--min-inside-fraction", "0.25"])
    assert r.exit_code == 0, r.output
    args = ["train", "--config", "tiny", "--shards", str(stale), "--output-dir", str(tmp_path)]
    r = runner.invoke(model_app, [*args, "--dry-run"])
    assert r.exit_code == 2 and "stale patch_masks cache" in r.output, r.output
    assert "ross3d-data cache-clips" in r.output
