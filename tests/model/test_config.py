"""Typed configs: shipped files load, JSON round trip, clear errors."""

import json

import pytest
from ross3d_model.config import (
    GroundingConfig,
    LLMConfig,
    PositionConfig,
    Ross3DConfig,
    VisionConfig,
    load_config,
    shipped_configs,
)


def test_every_shipped_config_loads():
    shipped = shipped_configs()
    assert {"tiny", "mid", "7b"} <= set(shipped)
    for name in shipped:
        cfg = load_config(name)
        assert cfg.pooled_grid == 14 and cfg.tokens_per_frame == 210


def test_7b_config_has_the_recipe_sizes():
    cfg = load_config("7b")
    assert (cfg.vision.hidden_size, cfg.llm.hidden_size, cfg.vision.grid) == (1152, 3584, 27)
    # LLaVA-NeXT's 26-layer tower + last layer == layer -2 of the 27-layer SigLIP
    assert (cfg.vision.num_layers, cfg.vision.select_layer) == (26, -1)
    assert cfg.vision.pretrained == "google/siglip-so400m-patch14-384"
    assert cfg.init_from == "lmms-lab/LLaVA-Video-7B-Qwen2"
    assert cfg.vae.pretrained == "black-forest-labs/FLUX.1-dev"
    assert cfg.tokens.num_views == 32 and cfg.reconstruction.width == 1024
    assert cfg.position.min_xyz == (-15.0, -15.0, -5.0) and cfg.position.voxel_size == 0.1


def test_json_round_trip(tmp_path):
    cfg = load_config("tiny")
    cfg.save(tmp_path / "c.json")
    again = Ross3DConfig.load(tmp_path / "c.json")
    assert again == cfg
    assert json.loads(json.dumps(again.to_dict())) == json.loads((tmp_path / "c.json").read_text())


def test_unknown_key_names_the_file(tmp_path):
    data = load_config("tiny").to_dict()
    data["llm"]["hiden_size"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bad.json.*hiden_size"):
        Ross3DConfig.load(path)


def test_missing_config_is_clear(tmp_path):
    with pytest.raises(ValueError, match="no such model config"):
        load_config(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: VisionConfig(hidden_size=30, num_heads=4), "divisible"),
        (lambda: VisionConfig(select_layer=-40), "select_layer"),
        (lambda: LLMConfig(num_heads=28, num_kv_heads=5), "num_kv_heads"),
        (lambda: PositionConfig(min_xyz=(0, 0, 0), max_xyz=(1, 1, 0)), "must be <"),
        (lambda: PositionConfig(voxel_size=0), "voxel_size"),
        (lambda: GroundingConfig(multi_threshold=1.5), "multi_threshold"),
    ],
)
def test_invalid_values_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()
