"""Reference switches of issue 20: trainable denoiser position tables (train_3d.py 1791-1794)
and truncation at text.max_length (ross3d_arch.py 951-955)."""

from __future__ import annotations

import pytest
from model_examples import instruction, make_example
from ross3d_model.configuration.parts import ReconstructionConfig
from ross3d_model.inputs.batch import collate_examples
from ross3d_model.modeling.reconstruction import Reconstructor


def _text_cfg(cfg, **values):
    data = cfg.to_dict()
    data["text"] = {**data["text"], **values}
    return type(cfg).from_dict(data)


def _small(**kw) -> ReconstructionConfig:
    return ReconstructionConfig(width=32, depth=1, num_heads=2, pool_heads=2, latent_channels=8,
                                view_grid=2, bev_grid=3, view_queries=4, bev_queries=9, **kw)  # fmt: skip


def test_position_tables_are_trained_parameters_in_the_reference():
    trained = Reconstructor(_small(position_tables="trainable"), llm_hidden_size=16)
    frozen = Reconstructor(_small(position_tables="frozen"), llm_hidden_size=16)
    params = dict(trained.named_parameters())
    for branch in ("view", "bev"):
        name = f"denoiser.branches.{branch}.pos_embed"
        assert params[name].requires_grad
        assert name in dict(frozen.named_buffers()) and name not in dict(frozen.named_parameters())
    assert trained.state_dict().keys() == frozen.state_dict().keys()
    assert (trained.state_dict()["denoiser.branches.bev.pos_embed"]
            == frozen.state_dict()["denoiser.branches.bev.pos_embed"]).all()  # fmt: skip


def test_overflow_truncates_to_the_first_max_length_tokens(tiny_cfg, tiny_tokenizer):
    ex = make_example(instruction("scanqa"))
    full = collate_examples([ex], tiny_tokenizer, tiny_cfg, seed=0)
    n_text = full["input_ids"].shape[1]
    n_visual = len(ex["frame_ids"]) * tiny_cfg.tokens_per_frame
    limit = n_text - 1 + n_visual - 3  # three tokens too many
    cut = collate_examples(
        [ex], tiny_tokenizer, _text_cfg(tiny_cfg, max_length=limit, overflow="truncate"), seed=0
    )
    assert cut["input_ids"].shape[1] == n_text - 3
    assert (cut["input_ids"][0] == full["input_ids"][0, : n_text - 3]).all()
    assert (cut["labels"][0] == full["labels"][0, : n_text - 3]).all()
    with pytest.raises(ValueError, match=f"exceed max_length {limit}"):
        collate_examples([ex], tiny_tokenizer, _text_cfg(tiny_cfg, max_length=limit), seed=0)
    image_at = full["input_ids"][0].tolist().index(tiny_tokenizer.convert_tokens_to_ids("<image>"))
    through_frames = image_at + n_visual - 1  # would cut inside the visual tokens
    cfg = _text_cfg(tiny_cfg, max_length=through_frames, overflow="truncate")
    with pytest.raises(ValueError, match="exceed max_length"):
        collate_examples([ex], tiny_tokenizer, cfg, seed=0)


def test_shards_must_be_built_with_the_configs_resize_aspect(tiny_cfg):
    from ross3d_model.inputs.shard_layout import shard_layout_mismatches

    sample = {"views": 1, "size": tiny_cfg.vision.image_size, "grid": tiny_cfg.pooled_grid}
    assert shard_layout_mismatches(sample, tiny_cfg) == []  # older shards: "color"
    data = tiny_cfg.to_dict()
    data["vision"] = {**data["vision"], "resize_aspect": "depth"}
    public = type(tiny_cfg).from_dict(data)
    (problem,) = shard_layout_mismatches(sample, public)
    assert "--resize-aspect depth" in problem
    assert shard_layout_mismatches({**sample, "resize_aspect": "depth"}, public) == []
