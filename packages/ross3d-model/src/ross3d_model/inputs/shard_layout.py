"""Shards and model config must agree on the clip layout before anything is built.

A shard folder's manifest records how its clips were made (``sample``: views per clip, image
side, crop, 3D-token grid; ``ross3d_data.shards.sample.SampleConfig``). A model config that
expects another layout fails deep inside a forward ("6892 tokens exceed max_length 4096") or,
worse, trains on mis-registered coordinates. ``check_shard_layout`` compares the two when a run
or ``predict`` opens the shards and raises one line naming both values and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ross3d_model.configuration.model import Ross3DConfig


class ShardLayoutError(ValueError):
    """The shards were built for another clip layout than the model config expects."""


def shard_layout_mismatches(sample: Mapping, cfg: Ross3DConfig) -> list[str]:
    """One phrase per disagreeing setting (empty when the shards fit the config)."""
    found = []
    # fewer views than the config's budget are fine (the model takes a clip's own view count);
    # more overflow text.max_length, which is sized for tokens.num_views
    if sample["views"] > cfg.tokens.num_views:
        found.append(
            f"the shards hold {sample['views']} views per clip but the model config's "
            f"tokens.num_views is {cfg.tokens.num_views}: rebuild them with "
            f"`ross3d-data build-shards ... --views {cfg.tokens.num_views}` "
            "(or use a model config for that many views)"
        )
    if sample["size"] != cfg.vision.image_size:
        found.append(
            f"the shards' images are {sample['size']} px but vision.image_size is "
            f"{cfg.vision.image_size}: the shards were built for another vision tower"
        )
    built = sample.get("resize_aspect", "color")  # shards from before the switch: "color"
    if built != cfg.vision.resize_aspect:
        found.append(
            f"the shards' colour frames were resized by the {built} aspect but "
            f"vision.resize_aspect is {cfg.vision.resize_aspect}: rebuild them with "
            f"`ross3d-data build-shards ... --resize-aspect {cfg.vision.resize_aspect}`"
        )
    if sample["grid"] != cfg.pooled_grid:
        found.append(
            f"the shards' 3D-token grid is {sample['grid']} but the model pools to "
            f"{cfg.pooled_grid} tokens per side: the shards were built for another vision tower"
        )
    return found


def check_shard_layout(sample: Mapping, cfg: Ross3DConfig, shards: Path | str) -> None:
    """ShardLayoutError (one line, naming the folder) when ``sample`` (the manifest's
    ``sample`` section) does not fit ``cfg``."""
    problems = shard_layout_mismatches(sample, cfg)
    if problems:
        raise ShardLayoutError(f"{shards}: " + "; ".join(problems))
