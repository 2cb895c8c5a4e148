"""The product-level check every reader's tests share: ``build-shards`` on one scene folder of
that dataset makes exactly one vision-only clip whose key is the prefixed, dot-free scene id."""

from __future__ import annotations

from pathlib import Path

from ross3d_data.shards.build import ShardConfig, build_shards, read_manifest
from ross3d_data.shards.sample import SampleConfig


def vision_only_clip_key(scene_dir: Path, out: Path, views: int) -> str:
    """Build shards of ``scene_dir`` alone into ``out``; assert one vision-only clip, no
    failure, and return its key (asserted dot-free)."""
    summary = build_shards(
        ShardConfig(scenes=(scene_dir,), out=out, sample=SampleConfig(views=views))
    )
    assert summary.samples == 1 and summary.vision_only == 1 and not summary.failed
    (key,) = [k for s in read_manifest(out)["shards"] for k in s["keys"]]
    assert "." not in key
    return key
