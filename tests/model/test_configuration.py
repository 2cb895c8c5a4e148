"""`ross3d_model.configuration`: torch-free import, derived sizes checked at load, variants as
base + overrides (issue 16)."""

import json
import subprocess
import sys

import pytest
import ross3d_model.configuration as configuration
from ross3d_model.configuration import (
    Ross3DConfig,
    RunConfig,
    load_config,
    load_run_config,
    merge,
    shipped_configs,
    shipped_run_configs,
)


def test_import_loads_no_heavy_framework():
    code = (
        "import sys, ross3d_model.configuration as c\n"
        "c.load_config('7b'); c.load_run_config('7b-semi')\n"
        "heavy = ('torch', 'transformers', 'diffusers', 'deepspeed')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_what_all_names():
    assert set(configuration.__all__) <= set(dir(configuration))
    for name in ("Ross3DConfig", "RunConfig", "TrainConfig", "DataConfig", "VaeConfig"):
        assert name in configuration.__all__
    assert {"tiny", "mid", "7b", "7b-plus"} <= set(shipped_configs())
    assert {"tiny", "7b", "7b-plus", "7b-semi"} <= set(shipped_run_configs())


def _variant(tmp_path, overrides: dict, base: str = "tiny"):
    path = tmp_path / "variant.json"
    path.write_text(json.dumps({"base": base, **overrides}))
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # 336 // 14 = 24 patches, pooled by 2 -> 12 tokens per side; the targets are 14 x 14
        (
            {"vision": {"image_size": 336}},
            "reconstruction.view_grid 14 != the visual token grid 12 (vision.image_size 336 "
            "// vision.patch_size 14 = 24, pooled by tokens.pool_stride 2)",
        ),
        (
            {"tokens": {"pool_stride": 3}},  # ceil(27 / 3) = 9
            "reconstruction.view_grid 14 != the visual token grid 9",
        ),
        # 240 / 8 = 30 latent pixels -> 30 -> 15 tokens per side
        (
            {"vae": {"view_size": 240}},
            "reconstruction.view_grid 14 != 15, the latent grid of vae.view_size 240",
        ),
        # 448 / 8 = 56 -> 28
        (
            {"vae": {"bev_size": 448}},
            "reconstruction.bev_grid 27 != 28, the latent grid of vae.bev_size 448",
        ),
        (
            {"vae": {"latent_channels": 8, "tiny_block_out_channels": [8, 8, 16, 16]}},
            "reconstruction.latent_channels 64 != 32 = 4 x vae.latent_channels 8",
        ),
        # tiny: 4 views x 14 x 15 tokens = 840
        (
            {"text": {"max_length": 840}},
            "text.max_length 840 <= 840 visual tokens (tokens.num_views 4 x 210 per frame)",
        ),
        (
            {"llm": {"max_position_embeddings": 2048}},
            "text.max_length 4096 > llm.max_position_embeddings 2048",
        ),
    ],
)
def test_mismatched_derived_sizes_are_refused_at_load(tmp_path, overrides, message):
    path = _variant(tmp_path, overrides)
    with pytest.raises(ValueError) as err:
        load_config(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(path))
    assert message in text


def test_consistent_smaller_grid_loads(tmp_path):
    """336 px -> 12 tokens per side; VAE views of 192 px -> 24 -> 12; the config says 12."""
    recon = {"view_grid": 12, "view_queries": 144}
    cfg = load_config(_variant(tmp_path, {"vision": {"image_size": 336},
                                          "vae": {"view_size": 192},
                                          "reconstruction": recon}))  # fmt: skip
    assert (cfg.pooled_grid, cfg.vae.view_grid, cfg.tokens_per_frame) == (12, 12, 12 * 13)
    assert cfg.visual_tokens == 4 * 156


def test_queries_must_match_their_grid(tmp_path):
    with pytest.raises(ValueError, match=r"reconstruction.bev_queries 700 != .*bev_grid 27"):
        load_config(_variant(tmp_path, {"reconstruction": {"bev_queries": 700}}))


def test_merge_merges_objects_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"deep": 1, "keep": 2}}, "b": 3, "c": None}
    over = {"a": {"y": [9], "z": {"deep": 5}}, "b": None, "c": {"new": 1}}
    assert merge(base, over) == {
        "a": {"x": 1, "y": [9], "z": {"deep": 5, "keep": 2}},
        "b": None,
        "c": {"new": 1},
    }
    assert base["a"]["z"] == {"deep": 1, "keep": 2}  # inputs untouched


def test_bases_chain(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"base": "tiny", "text": {"max_new_tokens": 7}}))
    (tmp_path / "b.json").write_text(json.dumps({"base": "a.json", "seed": 3}))
    cfg = load_config(tmp_path / "b.json")
    assert (cfg.seed, cfg.text.max_new_tokens, cfg.text.max_length) == (3, 7, 4096)


def test_unknown_base_and_cycles_are_one_line_errors(tmp_path):
    path = _variant(tmp_path, {}, base="7c")
    with pytest.raises(ValueError, match=r"unknown base model config '7c' \(shipped model config"):
        load_config(path)
    (tmp_path / "x.json").write_text(json.dumps({"base": "y.json"}))
    (tmp_path / "y.json").write_text(json.dumps({"base": "x.json", "seed": 1}))
    with pytest.raises(ValueError, match=r"bases form a cycle: x.json -> y.json -> x.json"):
        load_config(tmp_path / "x.json")
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"base": "7b-super"}))
    with pytest.raises(ValueError, match=r"unknown base run config '7b-super' \(shipped run"):
        load_run_config(run)


def test_a_model_config_base_is_a_model_config(tmp_path):
    """'7b' names a run config and a model config; a model config's base is the model one."""
    cfg = load_config(_variant(tmp_path, {"seed": 5}, base="7b"))
    assert cfg.llm.hidden_size == 3584 and cfg.seed == 5


def _shipped_json(path) -> dict:
    return json.loads(path.read_text())


def test_model_7b_plus_resolves_to_the_previous_file():
    """The previous configs/model/7b-plus.json was a full copy of 7b.json with these values."""
    expected = _shipped_json(shipped_configs()["7b"])
    expected["position"]["invalid_depth"] = "zero"
    expected["grounding"]["patch_depth"] = "valid"
    expected["text"]["lm_labels"] = "answer"
    expected["vae"]["antialias"] = True
    expected["vae"]["bev_valid_rule"] = "block"
    expected["reconstruction"]["conditioning"] = "per-target"
    # issue 20's switches: 7b took the public values, 7b-plus keeps the previous ones
    expected["vision"]["resize_aspect"] = "color"
    expected["vae"]["bev_resize"] = "square"
    expected["reconstruction"]["position_tables"] = "frozen"
    expected["text"].update(max_length=8192, overflow="error")
    assert load_config("7b-plus") == Ross3DConfig.from_dict(expected)
    assert _shipped_json(shipped_configs()["7b-plus"])["base"] == "7b"


# The train and data sections of the previous configs/7b-plus.json (a full copy of 7b.json with
# "model": "7b-plus"); the previous 7b-semi.json had "model": "7b", "max_steps": 872 and
# data.vision_only_scenes "scannetv2_train.txt". max_steps is now null + epochs 1 (derived from
# the shard data when the run starts: 870 on the recipe's, test_config.py).
PREVIOUS_7B_TRAIN = {
    "max_steps": 870, "micro_batch_size": 1, "grad_accum": 32, "lr": 1e-05, "weight_decay": 0.0,
    "warmup_ratio": 0.03, "max_grad_norm": 1.0, "bf16": True, "tf32": True,
    "gradient_checkpointing": True, "deepspeed": "zero3", "save_every": 100,
    "keep_checkpoints": 2, "log_every": 1, "seed": 0,
}  # fmt: skip
PREVIOUS_7B_DATA = {
    "shards": None, "tasks": None, "vision_only_scenes": None, "group_by_task": True,
    "split": "train",
}  # fmt: skip


def test_run_variants_resolve_to_the_previous_files():
    # the global batch is the recipe now; grad_accum 32 is derived on 8 GPUs
    train = {**PREVIOUS_7B_TRAIN, "max_steps": None, "epochs": 1, "grad_accum": None,
             "global_batch_size": 256}  # fmt: skip
    plus = {"model": "7b-plus", "train": train, "data": PREVIOUS_7B_DATA}
    assert load_run_config("7b-plus") == RunConfig.from_dict(plus)
    # 7b-semi now also names the vision-only datasets beyond ScanNet (issue 17), shares by count
    others = {"arkitscenes": None, "3rscan": None, "multiscan": None, "scannetpp": None}
    semi_data = {**PREVIOUS_7B_DATA, "vision_only_scenes": "scannetv2_train.txt",
                 "vision_only_sources": others}  # fmt: skip
    semi = {"model": "7b", "train": train, "data": semi_data}
    assert load_run_config("7b-semi") == RunConfig.from_dict(semi)
    for name in ("7b-plus", "7b-semi"):
        assert _shipped_json(shipped_run_configs()[name])["base"] == "7b"
