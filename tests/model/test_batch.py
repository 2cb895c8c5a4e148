"""collate_examples: conversation layout, label masking, seeded answer choice, tensors, errors."""

import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.configuration.model import SPATIAL_PROMPT
from ross3d_model.inputs.batch import collate_examples
from ross3d_model.modeling.model import IGNORE_INDEX
from ross3d_model.modeling.vision import normalise_pixels


def _decode(tok, ids):
    return tok.decode([i for i in ids if i != IGNORE_INDEX])


def _cfg(cfg, section: str, **values):
    data = cfg.to_dict()
    data[section] = {**data[section], **values}
    return type(cfg).from_dict(data)


def _text(tok, batch, i):
    return _decode(tok, batch["input_ids"][i][batch["attention_mask"][i].bool()])


def test_reference_label_set(tiny_cfg, tiny_tokenizer, mixed_examples):
    """preprocess_qwen (Ross3D train_3d.py ~612-680): the assistant turn
    `<|im_start|>assistant\n{answer}<|im_end|>\n` is labelled whole, and so is every `\n`,
    `<|im_start|>`, `<|im_end|>` of the system and user turns (token 198 = '\n' in Qwen2)."""
    assert tiny_cfg.text.lm_labels == "turn-and-markers"
    batch = collate_examples(mixed_examples, tiny_tokenizer, tiny_cfg, seed=0)
    labels = batch["labels"][0]
    kept = labels != IGNORE_INDEX
    assert torch.equal(labels[kept], batch["input_ids"][0][kept])  # labels are the tokens
    answer = _decode(tiny_tokenizer, labels.tolist())
    system = "<|im_start|>\n<|im_end|>\n"  # <|im_start|>system\n...<|im_end|>\n
    user = "<|im_start|>\n\n\n<|im_end|>\n"  # user\n, after <image>, after the spatial prompt
    turn = "<|im_start|>assistant\n{}<|im_end|>\n"
    assert answer in (system + user + turn.format(a) for a in ("brown", "the chair is brown"))
    assert _text(tiny_tokenizer, batch, 0).endswith(answer[len(system + user) :])
    # grounding (InfoNCE only) and vision-only examples have no LM target
    for i in (2, 3, 4):
        assert (batch["labels"][i] == IGNORE_INDEX).all()


def test_answer_label_set(tiny_cfg, tiny_tokenizer, mixed_examples):
    cfg = _cfg(tiny_cfg, "text", lm_labels="answer")
    batch = collate_examples(mixed_examples, tiny_tokenizer, cfg, seed=0)
    answer = _decode(tiny_tokenizer, batch["labels"][0].tolist())
    assert answer in ("brown<|im_end|>", "the chair is brown<|im_end|>")
    assert _text(tiny_tokenizer, batch, 0).endswith("<|im_start|>assistant\n" + answer)
    for i in (2, 3, 4):
        assert (batch["labels"][i] == IGNORE_INDEX).all()


def test_prompt_layout_is_the_public_one(tiny_cfg, tiny_tokenizer, mixed_examples):
    """train_3d.py ~1272-1274: `<image>\n{spatial}\n` + the raw text without `<image>`; the raw
    text is "<image> {question} ..." for QA / captions and "<image>Identify ..." for grounding
    (scripts/3d/preprocessing/process_*.py). Without the spatial prompt: `<image>\n` + the raw
    text without `<image>` (the public eval input, tests/model/test_public_prompt.py)."""
    batch = collate_examples(mixed_examples, tiny_tokenizer, tiny_cfg, seed=0)
    qa = "What color is the chair? Answer the question simply."
    ground = "Identify the object according to the following description.\nthe brown chair"
    assert f"<|im_start|>user\n<image>\n{SPATIAL_PROMPT}\n {qa}<|im_end|>" in _text(
        tiny_tokenizer, batch, 0
    )
    assert f"<|im_start|>user\n<image>\n{SPATIAL_PROMPT}\n{ground}<|im_end|>" in _text(
        tiny_tokenizer, batch, 2
    )
    assert _text(tiny_tokenizer, batch, 2).endswith("<|im_start|>assistant\n<ground>")
    vision_only = _text(tiny_tokenizer, batch, 4)
    assert "<|im_start|>user\n<image><|im_end|>" in vision_only
    bare = collate_examples(
        mixed_examples, tiny_tokenizer, tiny_cfg, train=False, spatial_prompt=False
    )
    assert f"<|im_start|>user\n<image>\n {qa}<|im_end|>" in _text(tiny_tokenizer, bare, 0)
    assert f"<|im_start|>user\n<image>\n{ground}<|im_end|>" in _text(tiny_tokenizer, bare, 2)
    assert all(SPATIAL_PROMPT not in _text(tiny_tokenizer, bare, i) for i in range(5))


def test_tensor_fields(tiny_cfg, tiny_tokenizer, mixed_examples):
    batch = collate_examples(mixed_examples, tiny_tokenizer, tiny_cfg)
    b = len(mixed_examples)
    assert "pixel_values" not in batch  # uint8 images only: the model normalises on its device
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (b, 4, 3, 384, 384)
    assert batch["bev"].shape == (b, 3, 432, 432)
    assert batch["coords"].shape == (b, 4, 14, 14, 3) and batch["overlap"].shape == (b, 4, 4)
    assert batch["is_grounding"].tolist() == [False, False, True, True, False]
    assert batch["has_text"].tolist() == [True, True, True, True, False]
    assert batch["grounding"][2]["positives"] == [0]
    assert batch["grounding"][3]["positives"] == [0, 1]
    assert batch["grounding"][2]["in_box"].shape == (3, 4, 27, 27)
    # scan2cap: <coord> gets the centre of object 10's box (the instruction has no box)
    assert torch.equal(batch["coord_centres"][1], torch.tensor([0.0, 0.0, 2.0]))
    assert torch.equal(batch["coord_centres"][0], torch.zeros(3))


def test_pixel_normalisation(tiny_cfg):
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 3, 1, 1)
    got = normalise_pixels(images, tiny_cfg).flatten()
    assert torch.allclose(got, torch.tensor([-1.0, 1.0, -0.6]))


def test_answer_choice_is_seeded(tiny_cfg, tiny_tokenizer):
    ex = [make_example(instruction("scanqa"))]
    picks = {
        seed: _decode(
            tiny_tokenizer,
            collate_examples(ex, tiny_tokenizer, tiny_cfg, seed=seed)["labels"][0].tolist(),
        )
        for seed in range(8)
    }
    again = collate_examples(ex, tiny_tokenizer, tiny_cfg, seed=3)["labels"][0].tolist()
    assert _decode(tiny_tokenizer, again) == picks[3]
    assert len(set(picks.values())) == 2  # both answers get picked across seeds


def test_eval_batch_has_no_answer(tiny_cfg, tiny_tokenizer):
    batch = collate_examples(
        [make_example(instruction("scanqa"))], tiny_tokenizer, tiny_cfg, train=False
    )
    assert (batch["labels"] == IGNORE_INDEX).all()
    text = tiny_tokenizer.decode(batch["input_ids"][0])
    assert text.endswith("<|im_start|>assistant\n")


def test_missing_target_object_is_an_error(tiny_cfg, tiny_tokenizer):
    ex = make_example(instruction("scanrefer", object_ids=[99]))
    with pytest.raises(ValueError, match="target object 99"):
        collate_examples([ex], tiny_tokenizer, tiny_cfg)


def test_too_long_is_an_error(tiny_cfg, tiny_tokenizer):
    # 850 leaves 10 text tokens after the 4 x 210 visual ones (a config with no room for text
    # at all is refused when it loads)
    cfg = type(tiny_cfg).from_dict(
        {**tiny_cfg.to_dict(), "text": {**tiny_cfg.to_dict()["text"], "max_length": 850}}
    )
    with pytest.raises(ValueError, match="exceed max_length 850"):
        collate_examples([make_example(instruction("scanqa"))], tiny_tokenizer, cfg)


def test_loader_examples_collate_and_run(tiny_model, tiny_cfg, tiny_tokenizer, tmp_path):
    """End to end with the data package: demo scene -> instructions -> shards -> loader examples
    (one per task) -> collate -> one cross-view forward with every loss present."""
    import json

    from ross3d_data.instructions import ConvertConfig, convert_instructions
    from ross3d_data.shards.build import ShardConfig, build_shards
    from ross3d_data.shards.loader import iter_examples
    from ross3d_data.shards.sample import SampleConfig
    from ross3d_data.synthetic.annotations import write_demo_annotations
    from ross3d_data.synthetic.scenes import make_demo

    scenes = make_demo(tmp_path / "demo", n_scenes=1, seed=0, n_frames=20)
    files = write_demo_annotations(scenes, tmp_path / "ann")
    lines = []
    for task in ("scanqa", "scan2cap", "scanrefer", "multi3drefer"):
        source = "scanrefer" if task == "scan2cap" else task  # Scan2Cap reuses ScanRefer files
        cfg = ConvertConfig(
            task=task,
            input=files[f"{source}_train"],
            split="train",
            out=tmp_path / f"{task}.jsonl",
            boxes_json=files["boxes"],
        )
        lines += [json.dumps(i.to_dict()) + "\n" for i in convert_instructions(cfg).instructions]
    (tmp_path / "inst.jsonl").write_text("".join(lines))
    shard_cfg = ShardConfig(
        scenes=tuple(scenes),
        out=tmp_path / "shards",
        instructions=(tmp_path / "inst.jsonl",),
        sample=SampleConfig(views=4),
    )
    build_shards(shard_cfg)
    first = {}
    for ex in iter_examples(tmp_path / "shards", split="train"):
        first.setdefault(ex["instruction"]["task"], ex)
    assert sorted(first) == ["multi3drefer", "scan2cap", "scanqa", "scanrefer"]
    batch = collate_examples(list(first.values()), tiny_tokenizer, tiny_cfg)
    tasks = batch["tasks"]
    for i, target in enumerate(batch["grounding"]):
        if tasks[i] == "scanrefer":  # the demo target is visible: some patch lies in its box
            assert target["in_box"][target["positives"][0]].any()
    assert batch["coord_centres"][tasks.index("scan2cap")].abs().sum() > 0
    masks = torch.zeros(4, 4, dtype=torch.bool)
    masks[:, 1] = True
    out = tiny_model(batch, cross_view=True, masked_views=masks)
    assert all(torch.isfinite(out.losses[k]) for k in ("lm", "cross_view", "bev", "grounding"))
