"""Greedy generation and prediction records (contracts section 4)."""

import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.batch import collate_examples
from ross3d_model.generation import generate_text, ground_logits, predict, select_rows
from ross3d_model.grounding import select_multi


@pytest.fixture(scope="module")
def eval_batch(tiny_cfg, tiny_tokenizer):
    examples = [
        make_example(instruction("scanqa", split="val", eval={"question_id": "q7"}), seed=1),
        make_example(
            instruction("scan2cap", split="val", eval={"object_id": 10, "ann_id": 0}), seed=2
        ),
        make_example(
            instruction("scanrefer", split="val", eval={"object_id": 10, "ann_id": 3}), seed=3
        ),
        make_example(instruction("multi3drefer", split="val", eval={"ann_id": 4}), seed=4),
    ]
    return collate_examples(examples, tiny_tokenizer, tiny_cfg, train=False)


def _manual_greedy(model, embeds, n_steps, eos):
    """Greedy decoding without a KV cache: argmax of the full-sequence logits each step."""
    lm, ids = model.language_model, []
    for _ in range(n_steps):
        nxt = int(lm(inputs_embeds=embeds).logits[0, -1].argmax())
        if nxt == eos:
            break
        ids.append(nxt)
        embeds = torch.cat([embeds, lm.get_input_embeddings()(torch.tensor([[nxt]]))], dim=1)
    return ids


@torch.no_grad()
def test_generate_matches_a_cache_free_greedy_loop(tiny_model, tiny_tokenizer, eval_batch):
    batch = select_rows(eval_batch, [1])  # the caption example (<coord> token)
    got = generate_text(tiny_model, batch, tiny_tokenizer, max_new_tokens=4)
    prep = tiny_model.prepare_inputs(batch, torch.zeros(1, 4, dtype=torch.bool))
    expected = _manual_greedy(tiny_model, prep.embeds, 4, tiny_model.special_ids["im_end"])
    assert got == [expected]


def test_predict_records(tiny_model, tiny_tokenizer, eval_batch):
    records = predict(tiny_model, eval_batch, tiny_tokenizer)
    assert set(records[0]) == {"question_id", "answer"} and records[0]["question_id"] == "q7"
    assert isinstance(records[0]["answer"], str)
    assert records[1]["object_id"] == 10 and records[1]["scene_id"] == "scene0000_00"
    assert records[1]["box"] == pytest.approx([0.0, 0.0, 2.0, 0.6, 0.6, 0.4])
    logits = ground_logits(tiny_model, eval_batch)
    boxes = eval_batch["grounding"][2]["boxes"]
    assert records[2]["box"] == boxes[int(logits[2][:-1].argmax())].tolist()
    assert (records[2]["object_id"], records[2]["ann_id"]) == (10, 3)
    chosen = select_multi(logits[3], tiny_model.cfg.grounding.multi_threshold)
    assert records[3]["boxes"] == [boxes[k].tolist() for k in chosen]
    assert records[3]["ann_id"] == 4


def test_predict_needs_instructions(tiny_model, tiny_tokenizer, tiny_cfg):
    batch = collate_examples([make_example(None)], tiny_tokenizer, tiny_cfg, train=False)
    with pytest.raises(ValueError, match="vision-only"):
        predict(tiny_model, batch, tiny_tokenizer)
