"""Greedy generation and prediction records (contracts section 4)."""

import copy

import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.inference.decoding import attention_mask_4d
from ross3d_model.inference.generation import (
    PrefixCache,
    clip_groups,
    encode,
    generate_text,
    ground_logits,
    predict,
    select_rows,
)
from ross3d_model.inputs.batch import collate_examples
from ross3d_model.modeling.grounding import select_multi


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


def test_attention_mask_sees_valid_keys_up_to_itself():
    """Hand-written: row [pad, a, b | c] with the last 2 slots as queries."""
    valid = torch.tensor([[False, True, True, True]])
    mask = attention_mask_4d(valid, 2, torch.float32, boolean=True)[0, 0]
    assert mask.tolist() == [[False, True, True, False], [False, True, True, True]]
    pad_query = attention_mask_4d(torch.tensor([[False, True]]), 2, torch.float32, True)[0, 0]
    assert pad_query.tolist() == [[True, False], [False, True]]  # a padding query sees itself
    additive = attention_mask_4d(valid, 2, torch.float32, boolean=False)[0, 0]
    assert additive[1].tolist() == [torch.finfo(torch.float32).min, 0.0, 0.0, 0.0]


def _mixed_clip_examples() -> list[dict]:
    """Two clips (seeds 1, 2), every benchmark, questions of different lengths, interleaved."""
    box_a, box_b = [0.0, 0.0, 2.0, 0.6, 0.6, 0.4], [1.5, 0.5, 2.0, 0.4, 0.4, 0.4]
    specs = [
        (1, instruction("scanqa", eval={"question_id": "a"})),
        (2, instruction("scanqa", prompt="Where is it?", eval={"question_id": "b"})),
        (1, instruction("sqa3d", eval={"question_id": "c"})),
        (1, instruction("scan2cap", boxes=[box_a], eval={"object_id": 10})),
        (2, instruction("scan2cap", boxes=[box_b], eval={"object_id": 11})),
        (1, instruction("scanrefer", eval={"object_id": 10, "ann_id": 1})),
        (2, instruction("multi3drefer", eval={"ann_id": 2})),
        (1, instruction("scanqa", prompt="How many chairs are there in total?", eval={"question_id": "d"})),
    ]  # fmt: skip
    return [make_example({**ins, "split": "val"}, seed=seed) for seed, ins in specs]


def test_clip_groups_share_the_prefix_of_identical_clips(tiny_model, tiny_cfg, tiny_tokenizer):
    batch = collate_examples(_mixed_clip_examples(), tiny_tokenizer, tiny_cfg, train=False)
    assert clip_groups(tiny_model, batch) == [0, 1, 0, 0, 1, 0, 1, 0]


@pytest.fixture(scope="module")
def sensitive_model(tiny_model):
    """The tiny model with LLM matrices redrawn at std 1/sqrt(fan_in): unlike the 0.02 init,
    its greedy output depends on the question and the clip, so mixed-up rows would show."""
    model = copy.deepcopy(tiny_model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.language_model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
    return model


@torch.no_grad()
def test_predictions_do_not_depend_on_batch_size_or_prefix_reuse(
    sensitive_model, tiny_cfg, tiny_tokenizer
):
    """Every benchmark (QA, <coord> captions, <ground> scoring): each example alone with a full
    prefill == all eight in one left-padded batch, with and without per-clip prefix reuse."""
    model, tok = sensitive_model, tiny_tokenizer
    examples = _mixed_clip_examples()
    alone = []
    for ex in examples:
        one = collate_examples([ex], tok, tiny_cfg, train=False)
        alone += predict(model, one, tok, max_new_tokens=6, reuse_prefix=False)
    batch = collate_examples(examples, tok, tiny_cfg, train=False)
    for reuse in (False, True):
        assert predict(model, batch, tok, 6, reuse) == alone, reuse
    rows = [select_rows(batch, [i]) for i in range(len(examples))]
    ids_alone = [generate_text(model, row, tok, 6, False)[0] for row in rows]
    assert len({tuple(ids) for ids in ids_alone}) > 1  # the rows' answers differ
    assert generate_text(model, batch, tok, 6, True) == ids_alone
    last_alone = torch.cat([encode(model, row, False).hidden_BSD[:, -1] for row in rows])
    for reuse in (False, True):
        last = encode(model, batch, reuse).hidden_BSD[:, -1]
        torch.testing.assert_close(last, last_alone, rtol=1e-4, atol=1e-5)
    logits_alone = [ground_logits(model, rows[i], False)[0] for i in (5, 6)]
    shared = ground_logits(model, batch, True)
    for got, want in zip([shared[5], shared[6]], logits_alone, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_prefix_reuse_runs_the_vision_tower_once_per_clip(tiny_model, tiny_cfg, tiny_tokenizer):
    batch = collate_examples(_mixed_clip_examples(), tiny_tokenizer, tiny_cfg, train=False)
    seen = []
    hook = tiny_model.mm_projector.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    try:
        predict(tiny_model, batch, tiny_tokenizer, 1, reuse_prefix=True)
        predict(tiny_model, batch, tiny_tokenizer, 1, reuse_prefix=False)
    finally:
        hook.remove()
    assert seen == [2 * 4, 8 * 4]  # frames through the projector: 2 clips vs 8 rows, 4 views


@torch.no_grad()
def test_a_prefix_cache_carries_a_clip_across_batches(sensitive_model, tiny_cfg, tiny_tokenizer):
    """Batches [a, c] and [d, e, f] of clip 1, then [b, g] of clip 2: the second batch reuses
    clip 1's prefill (no vision pass), the third recomputes; records equal each row alone."""
    model, tok = sensitive_model, tiny_tokenizer
    examples = _mixed_clip_examples()
    batches = [[0, 2], [3, 5, 7], [1, 6]]
    alone = {
        i: predict(
            model, collate_examples([examples[i]], tok, tiny_cfg, train=False), tok, 6, False
        )
        for i in [i for rows in batches for i in rows]
    }
    cache, seen, got = PrefixCache(), [], {}
    hook = model.mm_projector.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    try:
        for rows in batches:
            batch = collate_examples([examples[i] for i in rows], tok, tiny_cfg, train=False)
            got.update(zip(rows, predict(model, batch, tok, 6, True, cache), strict=True))
    finally:
        hook.remove()
    assert {i: [r] for i, r in got.items()} == alone
    assert seen == [4, 4]  # views through the projector: clip 1 once, clip 2 once
