"""Shards built for another clip layout are refused in one line that names the fix."""

from __future__ import annotations

import pytest
from ross3d_model.configuration.model import load_config
from ross3d_model.inputs.shard_layout import (
    ShardLayoutError,
    check_shard_layout,
    shard_layout_mismatches,
)

# build-shards' default sample (ross3d_data.shards.sample.SampleConfig): 32 views, 384 px, grid 14
DEFAULT_SAMPLE = {"views": 32, "method": "uniform", "size": 384, "crop": 378, "grid": 14}


def test_the_7b_config_reads_shards_built_as_published():
    """7b is the public recipe (vision.resize_aspect "depth", build-shards --resize-aspect
    depth); 7b-plus reads the default shards."""
    assert (
        shard_layout_mismatches(dict(DEFAULT_SAMPLE, resize_aspect="depth"), load_config("7b"))
        == []
    )
    assert shard_layout_mismatches(DEFAULT_SAMPLE, load_config("7b-plus")) == []
    (problem,) = shard_layout_mismatches(DEFAULT_SAMPLE, load_config("7b"))
    assert "--resize-aspect depth" in problem


def test_default_shards_for_the_tiny_model_name_the_views_option():
    tiny = load_config("tiny")
    assert tiny.tokens.num_views != 32
    with pytest.raises(ShardLayoutError) as err:
        check_shard_layout(DEFAULT_SAMPLE, tiny, "/data/shards")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("/data/shards: ")
    assert f"--views {tiny.tokens.num_views}" in msg and "32 views" in msg


def test_another_image_size_and_grid_are_both_named():
    cfg = load_config("7b-plus")
    sample = dict(DEFAULT_SAMPLE, size=336, grid=12)
    problems = shard_layout_mismatches(sample, cfg)
    assert len(problems) == 2
    assert "336 px" in problems[0] and "384" in problems[0]
    assert "grid is 12" in problems[1] and "14 tokens per side" in problems[1]


def test_as_many_or_fewer_views_than_the_config_pass():
    tiny = load_config("tiny")
    for views in (tiny.tokens.num_views, 1):
        assert shard_layout_mismatches(dict(DEFAULT_SAMPLE, views=views), tiny) == []


def test_predict_checks_the_shards_against_the_exported_config_before_loading(tmp_path):
    import json

    from ross3d_model.inference.predict import PredictConfig, check_predict_shards

    model = tmp_path / "model"
    (model / "tokenizer").mkdir(parents=True)  # a model folder; no weight is read
    (model / "config.json").write_text(json.dumps({"ross3d": load_config("tiny").to_dict()}))
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"sample": DEFAULT_SAMPLE}))
    cfg = PredictConfig(checkpoint=model, shards=shards, benchmarks=["scanqa"], out=tmp_path / "p")
    with pytest.raises(ShardLayoutError, match=r"--views \d+"):
        check_predict_shards(cfg)
    views = load_config("tiny").tokens.num_views
    fitting = dict(DEFAULT_SAMPLE, views=views, resize_aspect="color")
    (shards / "manifest.json").write_text(json.dumps({"sample": fitting}))
    check_predict_shards(cfg)  # fits: no error
