"""Inference: greedy text generation (QA, captions) and box selection (grounding), producing
prediction records in the `ross3d-eval score` format (docs/contracts.md section 4)."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from ross3d_model.batch import GROUNDING_TASKS
from ross3d_model.grounding import select_multi, select_single
from ross3d_model.modeling import PreparedInputs, Ross3DForCausalLM


def _prepare(model: Ross3DForCausalLM, batch: dict) -> PreparedInputs:
    b, v = batch["coords"].shape[:2]
    return model.prepare_inputs(batch, torch.zeros(b, v, dtype=torch.bool))


@torch.no_grad()
def generate_text(
    model: Ross3DForCausalLM,
    batch: dict,
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int | None = None,
) -> list[list[int]]:
    """Greedy decoding (HF generate with inputs_embeds and a KV cache), one example at a time
    (batches are right-padded). Returns the new token ids per example, `<|im_end|>` excluded."""
    limit = model.cfg.text.max_new_tokens if max_new_tokens is None else max_new_tokens
    prep = _prepare(model, batch)
    eos = model.special_ids["im_end"]
    out = []
    for i in range(prep.embeds.shape[0]):
        n = int(prep.attention_mask[i].sum())
        ids = model.language_model.generate(
            inputs_embeds=prep.embeds[i : i + 1, :n],
            attention_mask=prep.attention_mask[i : i + 1, :n],
            max_new_tokens=limit,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
        )[0].tolist()
        out.append(ids[: ids.index(eos)] if eos in ids else ids)
    return out


@torch.no_grad()
def ground_logits(model: Ross3DForCausalLM, batch: dict) -> list[torch.Tensor | None]:
    """[K+1] candidate + zero-target logits per grounding example (one LLM pass)."""
    prep = _prepare(model, batch)
    hidden = model.language_model.model(
        inputs_embeds=prep.embeds, attention_mask=prep.attention_mask
    ).last_hidden_state
    return model.ground_scores(hidden, prep, batch)


def _box_list(box) -> list[float]:
    return [float(x) for x in box]


def _eval_field(instruction: dict, key: str):
    if key not in instruction["eval"]:
        raise ValueError(f"instruction {instruction['id']}: eval has no {key!r} for scoring")
    return instruction["eval"][key]


def _text_record(instruction: dict, text: str, batch: dict, i: int) -> dict:
    task = instruction["task"]
    if task in ("scanqa", "sqa3d"):
        return {"question_id": _eval_field(instruction, "question_id"), "answer": text}
    return {
        "scene_id": batch["scene_ids"][i],
        "object_id": _eval_field(instruction, "object_id"),
        "caption": text,
        "box": _box_list(batch["query_boxes"][i]),
    }


def _ground_record(instruction: dict, logits, target: dict, scene_id: str, threshold) -> dict:
    boxes = target["boxes"]
    if instruction["task"] == "scanrefer":
        return {
            "scene_id": scene_id,
            "object_id": _eval_field(instruction, "object_id"),
            "ann_id": _eval_field(instruction, "ann_id"),
            "box": _box_list(boxes[select_single(logits)]),
        }
    return {
        "scene_id": scene_id,
        "ann_id": _eval_field(instruction, "ann_id"),
        "boxes": [_box_list(boxes[k]) for k in select_multi(logits, threshold)],
    }


def predict(
    model: Ross3DForCausalLM, batch: dict, tokenizer: PreTrainedTokenizerBase
) -> list[dict]:
    """One prediction record per example of an eval batch (`collate_examples(train=False)`)."""
    instructions = batch["instructions"]
    if any(ins is None for ins in instructions):
        raise ValueError("predict() needs an instruction for every example (got a vision-only one)")
    records: list[dict | None] = [None] * len(instructions)
    if batch["is_grounding"].any():
        threshold = model.cfg.grounding.multi_threshold
        for i, logits in enumerate(ground_logits(model, batch)):
            if logits is not None:
                records[i] = _ground_record(
                    instructions[i], logits, batch["grounding"][i], batch["scene_ids"][i], threshold
                )
    text_rows = [i for i, ins in enumerate(instructions) if ins["task"] not in GROUNDING_TASKS]
    if text_rows:
        sub = select_rows(batch, text_rows)
        for i, ids in zip(text_rows, generate_text(model, sub, tokenizer), strict=True):
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            records[i] = _text_record(instructions[i], text, batch, i)
    return records


def select_rows(batch: dict, rows: list[int]) -> dict:
    """The sub-batch of the given example indices (tensors indexed on dim 0, lists picked)."""
    index = torch.tensor(rows)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value[index]
        else:
            out[key] = [value[r] for r in rows]
    return out
