"""Loader examples (docs/contracts.md sections 2-3) -> model input batch.

Conversation (qwen_1_5): system turn, user turn, assistant turn = one answer (training, chosen by
a seeded RNG) or `<ground>` (grounding tasks). The user turn is the public code's
(`train_3d.py` ~1272-1274): `<image>\n{spatial prompt}\n` + the raw benchmark text without its
`<image>`, whose separator is per task (`prompts.IMAGE_SEPARATOR`: " " for ScanQA, SQA3D and
Scan2Cap, "" for the grounding tasks). Without the spatial prompt it is the public eval input
(`preprocess_qwen` of `ross3d/eval/model_*.py` ~54-62: the raw text split at `<image>`, the
image id followed by a newline token): `<image>\n{separator}{prompt}`, i.e. `<image>\n {question}`
and `<image>\nIdentify ...`; the grounding assistant turn is then `<ground><|im_end|>\n` as the
public eval passes it (`model_scanrefer.py` ~152), which leaves the hidden state at `<ground>`
unchanged (causal attention).

Labels (`cfg.text.lm_labels`, training text tasks only): "turn-and-markers" = the public
`preprocess_qwen` (`train_3d.py` ~612-680): the whole assistant turn
`<|im_start|>assistant\n{answer}<|im_end|>\n` plus every `\n`, `<|im_start|>` and `<|im_end|>`
token anywhere in the sequence; "answer" = the answer tokens and the closing `<|im_end|>`.
Grounding and vision-only examples (instruction None) have no LM targets (the public code trains
grounding samples with InfoNCE only).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from ross3d_benchmarks import GROUNDING_TASKS
from ross3d_data.cache.patch_masks import clip_masks, mask_inputs
from ross3d_data.instructions.prompts import IMAGE_SEPARATOR
from ross3d_data.views.coords import camera_centre_fill
from transformers import PreTrainedTokenizerBase

from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.inputs.caches import cached_fields, mask_params
from ross3d_model.inputs.tokenizer import (
    GROUND_TOKEN,
    IM_END,
    IM_START,
    IMAGE_TOKEN,
    special_token_ids,
)
from ross3d_model.modeling.model import IGNORE_INDEX

_STACKED = ("images", "coords", "coords_valid", "overlap", "bev")
_ASSISTANT_HEADER = f"{IM_START}assistant\n"


def user_text(instruction: dict | None, cfg: Ross3DConfig, spatial_prompt: bool = True) -> str:
    """The user turn's content (module docstring); a vision-only example is a bare `<image>`."""
    if instruction is None:
        return IMAGE_TOKEN
    text = IMAGE_SEPARATOR[instruction["task"]] + instruction["prompt"]
    if not spatial_prompt:
        return f"{IMAGE_TOKEN}\n{text}"
    return f"{IMAGE_TOKEN}\n{cfg.text.spatial_prompt}\n{text}"


def _answer_text(instruction: dict | None, train: bool, rng: random.Random) -> str | None:
    """What the assistant turn holds: an answer (train), `<ground>`, or nothing."""
    if instruction is None:
        return None
    if instruction["task"] in GROUNDING_TASKS:
        return GROUND_TOKEN
    if not train:
        return None
    answers = instruction["answers"]
    if not answers:
        raise ValueError(f"instruction {instruction['id']}: no answers to train on")
    return rng.choice(answers)


def _marker_ids(tok: PreTrainedTokenizerBase) -> set[int]:
    """Ids of `\n`, `<|im_start|>`, `<|im_end|>` (the public code's 198, im_start, im_end)."""
    newline = tok("\n", add_special_tokens=False).input_ids
    if len(newline) != 1:
        raise ValueError(f"tokenizer splits '\\n' into {newline}: expected one token")
    return {newline[0], *tok.convert_tokens_to_ids([IM_START, IM_END])}


def _tokenize(
    example: dict,
    tok: PreTrainedTokenizerBase,
    cfg: Ross3DConfig,
    train: bool,
    rng: random.Random,
    spatial_prompt: bool,
) -> tuple[list[int], list[int]]:
    """input ids and labels of one example (the `<image>` token still a single placeholder)."""
    instruction = example["instruction"]
    messages = [
        {"role": "system", "content": cfg.text.system_prompt},
        {"role": "user", "content": user_text(instruction, cfg, spatial_prompt)},
    ]
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, add_special_tokens=False).input_ids
    answer = _answer_text(instruction, train, rng)
    if answer is None:
        return ids, [IGNORE_INDEX] * len(ids)
    if instruction["task"] in GROUNDING_TASKS:
        closed = answer if spatial_prompt else answer + IM_END + "\n"  # public eval turn
        answer_ids = tok(closed, add_special_tokens=False).input_ids
        return ids + answer_ids, [IGNORE_INDEX] * (len(ids) + len(answer_ids))
    if cfg.text.lm_labels == "answer":
        answer_ids = tok(answer + IM_END, add_special_tokens=False).input_ids
        return ids + answer_ids, [IGNORE_INDEX] * len(ids) + answer_ids
    answer_ids = tok(answer + IM_END + "\n", add_special_tokens=False).input_ids
    header = tok(_ASSISTANT_HEADER, add_special_tokens=False).input_ids
    if ids[-len(header) :] != header:
        raise ValueError("chat template does not end with the assistant header it should")
    markers = _marker_ids(tok)
    labels = [t if t in markers else IGNORE_INDEX for t in ids[: -len(header)]]
    return ids + answer_ids, labels + header + answer_ids


def _fit_length(
    seq: list[int], lab: list[int], n_visual: int, image_id: int, cfg: Ross3DConfig, scene: str
) -> tuple[list[int], list[int]]:
    """`seq`/`lab` within `text.max_length` tokens once `<image>` becomes `n_visual` tokens:
    unchanged if they fit, else an error or (`text.overflow = "truncate"`) cut to the first
    max_length tokens as the public code does; a cut through the visual tokens is an error."""
    limit = cfg.text.max_length
    total = len(seq) - 1 + n_visual
    if total <= limit:
        return seq, lab
    keep = limit - n_visual + 1  # tokens of seq kept, `<image>` counted once
    if cfg.text.overflow == "error" or keep <= seq.index(image_id):
        raise ValueError(f"scene {scene}: {total} tokens exceed max_length {limit}")
    return seq[:keep], lab[:keep]


def _grounding_targets(example: dict, cfg: Ross3DConfig, train: bool) -> dict:
    """Candidate boxes (the example's GT boxes), their patch masks and the positive indices."""
    instruction = example["instruction"]
    boxes = torch.as_tensor(example["boxes"], dtype=torch.float32).reshape(-1, 6)
    object_ids = [int(i) for i in example["object_ids"]]
    positives = []
    for oid in instruction["object_ids"]:
        if oid not in object_ids:
            if train:
                raise ValueError(
                    f"instruction {instruction['id']}: target object {oid} is not among the "
                    f"scene {example['scene_id']} boxes {object_ids}"
                )
            continue
        positives.append(object_ids.index(oid))
    if "in_box" in example:  # from the per-clip cache (caches.ClipCaches.attach)
        in_box = torch.as_tensor(example["in_box"])
    else:  # the cache's own rule, on the example's CPU arrays (ross3d_data.cache.patch_masks)
        in_box = torch.from_numpy(clip_masks(mask_inputs(example), mask_params(cfg)))
    return {"boxes": boxes, "object_ids": object_ids, "positives": positives, "in_box": in_box}


def query_box(example: dict) -> torch.Tensor:
    """Scan2Cap query box [6]: the instruction's box, else the example's box of its object id
    (the GT box; at val/test predict first swaps in the matched proposal)."""
    instruction = example["instruction"]
    if instruction["boxes"]:
        return torch.tensor(instruction["boxes"][0], dtype=torch.float32)
    ids = [int(i) for i in example["object_ids"]]
    oid = instruction["object_ids"][0] if instruction["object_ids"] else None
    if oid not in ids:
        raise ValueError(f"instruction {instruction['id']}: no query box for the <coord> token")
    return torch.as_tensor(example["boxes"][ids.index(oid)], dtype=torch.float32)


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate_examples(
    examples: list[dict],
    tokenizer: PreTrainedTokenizerBase,
    cfg: Ross3DConfig,
    train: bool = True,
    seed: int | None = None,
    spatial_prompt: bool = True,
) -> dict:
    """Stack loader examples into one model batch (see module docstring; keys in docs).
    `spatial_prompt=False` builds the public eval code's input (module docstring; predict's
    reference protocol)."""
    if not examples:
        raise ValueError("collate_examples needs at least one example")
    rng = random.Random(cfg.seed if seed is None else seed)
    special = special_token_ids(tokenizer)
    ids, labels, tasks, grounding, coord = [], [], [], [], []
    for ex in examples:
        seq, lab = _tokenize(ex, tokenizer, cfg, train, rng, spatial_prompt)
        if seq.count(special["image"]) != 1:
            raise ValueError(f"scene {ex['scene_id']}: prompt must hold exactly one {IMAGE_TOKEN}")
        n_visual = len(ex["frame_ids"]) * cfg.tokens_per_frame
        seq, lab = _fit_length(seq, lab, n_visual, special["image"], cfg, ex["scene_id"])
        ids.append(seq)
        labels.append(lab)
        task = None if ex["instruction"] is None else ex["instruction"]["task"]
        tasks.append(task)
        grounding.append(_grounding_targets(ex, cfg, train) if task in GROUNDING_TASKS else None)
        coord.append(query_box(ex) if special["coord"] in seq else torch.zeros(6))
    input_ids = _pad(ids, special["pad"])
    batch = {name: torch.stack([torch.as_tensor(ex[name]) for ex in examples]) for name in _STACKED}
    batch["images"] = batch["images"].to(torch.uint8)
    if cfg.position.invalid_depth == "camera-centre":
        batch["coords"] = _camera_centre_coords(examples, batch["coords"], cfg)
        batch["coords_valid"] = torch.ones_like(batch["coords_valid"], dtype=torch.bool)
    batch.update(
        input_ids=input_ids,
        labels=_pad(labels, IGNORE_INDEX),
        attention_mask=_pad([[1] * len(s) for s in ids], 0),
        tasks=tasks,
        is_grounding=torch.tensor([t in GROUNDING_TASKS for t in tasks]),
        has_text=torch.tensor([t is not None for t in tasks]),
        grounding=grounding,
        query_boxes=torch.stack(coord),  # [B, 6] Scan2Cap query box (zeros: no <coord>)
        coord_centres=torch.stack(coord)[:, :3],
        scene_ids=[ex["scene_id"] for ex in examples],
        instructions=[ex["instruction"] for ex in examples],
    )
    batch.update(cached_fields(examples))  # bev_moments when the BEV latents are cached
    return batch


def _camera_centre_coords(examples: list[dict], coords_BVGG3: torch.Tensor, cfg) -> torch.Tensor:
    """Token-cell xyz with invalid-depth pixels at the camera centre (the numpy rule beside the
    cells' own, ross3d_data.views.coords.camera_centre_fill, on the examples' CPU arrays)."""
    crop = cfg.vision.grid * cfg.vision.patch_size
    filled = [
        camera_centre_fill(
            coords_BVGG3[i].numpy(),
            np.asarray(ex["depth_mm"]),
            np.asarray(ex["T_aligned_cam"]),
            crop,
        )
        for i, ex in enumerate(examples)
    ]
    return torch.from_numpy(np.stack(filled))
