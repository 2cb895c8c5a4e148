"""Typed configs: shipped files load, JSON round trip, clear errors."""

import json
from pathlib import Path

import pytest
from ross3d_model.configuration.model import (
    GroundingConfig,
    LLMConfig,
    PositionConfig,
    Ross3DConfig,
    TextConfig,
    VisionConfig,
    load_config,
    shipped_configs,
)


def test_every_shipped_config_loads():
    shipped = shipped_configs()
    assert {"tiny", "mid", "7b", "7b-plus"} <= set(shipped)
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
        (lambda: GroundingConfig(head_init="zeros"), "head_init"),
        (lambda: GroundingConfig(patch_depth="some"), "patch_depth"),
        (lambda: PositionConfig(invalid_depth="nan"), "invalid_depth"),
        (lambda: TextConfig(lm_labels="everything"), "lm_labels"),
    ],
)
def test_invalid_values_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# Every reference switch of the shipped 7b model config, with the public Ross3D file it comes
# from (github Haochen-Wang409/ross3d; docs/architecture.md "Reference switches").
REFERENCE_7B = {
    # preprocess_qwen, ross3d/train/train_3d.py ~612-680
    ("text", "lm_labels"): "turn-and-markers",
    # eval_multi3drefer.py ~147 (--threshold default) with the rule of ~100-111
    ("grounding", "multi_threshold"): 0.4,
    # ross3d_qwen.py ~103-118 + Qwen2 _init_weights (modeling_qwen2.py ~836-842)
    ("grounding", "head_init"): "reference",
    # ross3d_arch.py ~536-554: every pixel's point is tested, int(14 * 14 * 0.5) of them
    ("grounding", "patch_depth"): "any",
    ("grounding", "min_inside_fraction"): 0.5,
    ("grounding", "temperature"): 0.07,  # train_3d.py ~130 ground_head_temperature
    # average_coordinate_in_patch (ross3d_arch.py ~341-351) over unproject (video_utils.py ~39-69)
    ("position", "invalid_depth"): "camera-centre",
    ("position", "voxel_size"): 0.1,  # train_3d.py ~156-158
    ("position", "min_xyz"): (-15.0, -15.0, -5.0),
    ("position", "max_xyz"): (15.0, 15.0, 5.0),
    ("vae", "antialias"): False,  # ross3d_arch.py ~1105 F.interpolate(mode='bilinear')
    ("vae", "bev_valid_rule"): "bilinear-mean",  # ross3d_arch.py ~1250-1251
    ("vae", "bev_resize"): "crop-4:3",  # video_utils.py ~327-343: 576x432, centre crop 432
    # denoiser_dit_multi.py 179/190 Parameter(requires_grad=False), train_3d.py 1791-1794 True
    ("reconstruction", "position_tables"): "trainable",
    ("text", "max_length"): 32768,  # train_ross3d.sh line 55 --model_max_length 32768
    ("text", "overflow"): "truncate",  # ross3d_arch.py 951-955 x[:tokenizer_model_max_length]
    ("vision", "resize_aspect"): "depth",  # video_utils.py ~286-287, ~314-317: int(W * 384 / H)
    ("vae", "latent_mode"): "sample",  # posterior.sample(), ross3d_arch.py ~1116
    ("vae", "view_size"): 216,  # decode_image_size = 384 // 14 * 8, ross3d_arch.py ~138
    ("reconstruction", "compute_dtype"): "float32",  # autocast float32, ross3d_arch.py ~1124
    ("reconstruction", "conditioning"): "visible-pooled",  # ross3d_arch.py ~1109-1110
    ("reconstruction", "mask_ratio"): 0.25,  # train_ross3d.sh --view_mask_ratio 0.25
    ("objective", "cross_view_every"): 4,  # --view_mask_prob 0.25, ross3d_qwen.py ~152-156
}


def test_7b_config_holds_every_reference_value():
    cfg = load_config("7b")
    for (section, name), value in REFERENCE_7B.items():
        assert getattr(getattr(cfg, section), name) == value, f"{section}.{name}"


def test_7b_plus_differs_from_7b_only_in_documented_switches():
    ref, plus = load_config("7b").to_dict(), load_config("7b-plus").to_dict()
    changed = {
        (section, name)
        for section, values in ref.items()
        if isinstance(values, dict)
        for name, value in values.items()
        if plus[section][name] != value
    }
    documented = {
        ("text", "lm_labels"),
        ("position", "invalid_depth"),
        ("vae", "antialias"),
        ("vae", "bev_valid_rule"),
        ("vae", "bev_resize"),
        ("grounding", "patch_depth"),
        ("reconstruction", "conditioning"),
        ("reconstruction", "denoiser_init"),
        ("reconstruction", "pretrained_denoiser"),
        ("reconstruction", "position_tables"),
        ("text", "max_length"),
        ("text", "overflow"),
        ("vision", "resize_aspect"),
    }
    assert changed and changed <= documented
    arch = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    switches = {
        ("text", "lm_labels"),
        ("position", "invalid_depth"),
        ("grounding", "patch_depth"),
        ("grounding", "multi_threshold"),
        ("grounding", "head_init"),
        ("vae", "antialias"),
        ("vae", "bev_valid_rule"),
        ("reconstruction", "compute_dtype"),
        ("reconstruction", "conditioning"),
    }
    for section, name in changed | switches:
        assert f"`{section}.{name}`" in arch, f"docs/architecture.md lacks {section}.{name}"


def test_7b_run_config_is_one_epoch_of_the_public_recipe():
    """Global batch 1 x 32 x 8 = 256 (train_ross3d.sh); --group_by_task_length splits each task
    group into 256-sample blocks and drops each group's last block (ross3d_trainer.py ~243-270):
    QA 79,445 + 26,515, captions 36,665, grounding 36,665 + 43,838 -> 413 + 143 + 314 = 870.
    The run configs derive max_steps from the shard data (null, epochs 1): `steps_per_epoch`
    over REFERENCE 3's train counts per task group gives the same 870."""
    from ross3d_model.configuration.run import load_run_config, steps_per_epoch

    groups = (79_445 + 26_515, 36_665, 36_665 + 43_838)
    steps = sum(len(range(0, n, 256)) - 1 for n in groups)
    counts = {"qa": groups[0], "caption": groups[1], "grounding": groups[2]}
    for name in ("7b", "7b-plus"):
        run = load_run_config(name)
        assert run.model == name and (run.train.max_steps, run.train.epochs) == (None, 1)
        global_batch = run.train.global_batch_size  # grad_accum derived: 32 on 8 GPUs
        derived = run.train.epochs * steps_per_epoch(counts, global_batch, run.data.group_by_task)
        assert derived == steps == 870
        # micro-batch 1: the CE mean over a micro-batch's labelled tokens is the per-sample
        # mean of the public code (one sample per device step)
        assert (run.train.micro_batch_size, run.train.for_world(8).grad_accum) == (1, 32)
        assert (run.train.lr, run.train.warmup_ratio, run.train.weight_decay) == (1e-5, 0.03, 0.0)
