"""Inference: batched greedy text generation (QA, captions) and box selection (grounding),
producing prediction records in the `ross3d-eval score` format (docs/contracts.md section 4).

One LLM prefill serves a whole eval batch (text and grounding rows alike), left-padded, with a
KV cache. With `reuse_prefix`, rows showing the same clip (identical frames, coordinates and
text before `<image>`) share one prefill of the system prompt + visual tokens (and one vision
tower pass); the cache is then expanded and each row prefills only its own question suffix.
Every row computes what it would compute alone (see `decoding`), whatever the batch holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ross3d_benchmarks import GROUNDING_TASKS, QA_TASKS
from transformers import PreTrainedTokenizerBase

from ross3d_model.inference.decoding import CachedRows, extend, greedy, left_pad
from ross3d_model.modeling.grounding import select_multi, select_single
from ross3d_model.modeling.model import IGNORE_INDEX, PreparedInputs, Ross3DForCausalLM


@dataclass
class Encoded:
    """A prefilled eval batch: the cache of every row, the last segment's hidden states
    [B, S, D] (left-padded) with the token ids at those slots [B, S] (-1 = visual or padding),
    and each row's projected patch features [B, V, g, g, D] (grounding candidates)."""

    rows: CachedRows
    hidden_BSD: torch.Tensor
    ids_BS: torch.Tensor
    patch_feats: torch.Tensor


def _no_masks(batch: dict) -> torch.Tensor:
    b, v = batch["coords"].shape[:2]
    return torch.zeros(b, v, dtype=torch.bool)


def _image_position(model: Ross3DForCausalLM, batch: dict, i: int) -> tuple[int, int]:
    """(slot of `<image>`, text length) of row i."""
    n = int(batch["attention_mask"][i].sum())
    pos = (batch["input_ids"][i, :n] == model.special_ids["image"]).nonzero()
    if len(pos) != 1:
        raise ValueError(f"example {i}: needs exactly one <image> token, got {len(pos)}")
    return int(pos[0]), n


def clip_groups(model: Ross3DForCausalLM, batch: dict) -> list[int]:
    """Per row, the first row with the same prefix (scene, frames, coordinates, text before
    `<image>`): rows that can share one prefill. A `<coord>` before `<image>` (a row-specific
    embedding) makes a row its own group."""
    first: list[int] = []
    for i in range(len(batch["scene_ids"])):
        mine = ClipSignature.of(model, batch, i)
        match = i
        if mine.shareable(model):
            match = next(
                (r for r in sorted(set(first)) if mine == ClipSignature.of(model, batch, r)), i
            )
        first.append(match)
    return first


@dataclass(eq=False)
class ClipSignature:
    """What a row's prefix (text before `<image>` + visual tokens) depends on."""

    scene_id: str
    prefix_ids: torch.Tensor
    tensors: tuple[torch.Tensor, ...]  # images, coords, coords_valid

    @classmethod
    def of(cls, model: Ross3DForCausalLM, batch: dict, i: int) -> ClipSignature:
        p, _ = _image_position(model, batch, i)
        names = ("images", "coords", "coords_valid")
        return cls(
            batch["scene_ids"][i], batch["input_ids"][i, :p], tuple(batch[k][i] for k in names)
        )

    def shareable(self, model: Ross3DForCausalLM) -> bool:
        return not bool((self.prefix_ids == model.special_ids["coord"]).any())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ClipSignature)
            and self.scene_id == other.scene_id
            and torch.equal(self.prefix_ids, other.prefix_ids)
            and all(torch.equal(a, b) for a, b in zip(self.tensors, other.tensors, strict=True))
        )


class PrefixCache:
    """The prefilled prefix of the last clip `encode` saw (one cache row and its patch
    features), reused by the following batches of the same clip: with items in clip order a
    clip's prefix is computed about once, whatever the batch size."""

    def __init__(self) -> None:
        self.signature: ClipSignature | None = None
        self.rows: CachedRows | None = None
        self.patch_feats: torch.Tensor | None = None

    def lookup(self, signature: ClipSignature) -> tuple[CachedRows, torch.Tensor] | None:
        if self.signature is None or signature != self.signature:
            return None
        return self.rows.take(torch.zeros(1, dtype=torch.long)), self.patch_feats

    def store(self, signature: ClipSignature, rows: CachedRows, patch_feats: torch.Tensor):
        self.signature, self.rows, self.patch_feats = signature, rows, patch_feats


def _prefill_prefixes(model, batch: dict, reps: list[int], cache: PrefixCache | None):
    """(cache rows of the reps' prefixes, their patch features [U, V, g, g, D]): from `cache`
    when the batch is one clip it holds, else computed (the last rep then stored in `cache`)."""
    if cache is not None and len(reps) == 1:
        found = cache.lookup(ClipSignature.of(model, batch, reps[0]))
        if found is not None:
            return found
    sub = select_rows(batch, reps)
    prep = model.prepare_inputs(sub, _no_masks(sub))
    embeds, valid = left_pad([_prefix(model, sub, prep, u) for u in range(len(reps))])
    _, rows = extend(model.language_model.model, embeds, valid, None)
    if cache is not None:
        last = torch.tensor([len(reps) - 1])
        cache.store(
            ClipSignature.of(model, batch, reps[-1]), rows.take(last), prep.patch_feats[-1:]
        )
    return rows, prep.patch_feats


def _prefix(model, sub: dict, prep: PreparedInputs, u: int) -> torch.Tensor:
    """Embeddings of row u up to its last visual token (the text before `<image>`, visual)."""
    p, n_text = _image_position(model, sub, u)
    n_visual = int(prep.attention_mask[u].sum()) - n_text + 1
    return prep.embeds[u, : p + n_visual]


@torch.no_grad()
def encode(
    model: Ross3DForCausalLM,
    batch: dict,
    reuse_prefix: bool = True,
    prefix_cache: PrefixCache | None = None,
) -> Encoded:
    """Prefill every row of an eval batch (`collate_examples(train=False)`, tensors on the
    model's device); with `reuse_prefix`, once per clip for the shared prefix (or not at all
    when `prefix_cache` holds the batch's one clip from an earlier batch)."""
    if not reuse_prefix:
        prep = model.prepare_inputs(batch, _no_masks(batch))
        n = prep.attention_mask.sum(1).tolist()
        embeds, valid = left_pad([prep.embeds[i, : n[i]] for i in range(len(n))])
        ids, _ = left_pad([prep.input_ids[i, : n[i]] for i in range(len(n))], -1)
        hidden, rows = extend(model.language_model.model, embeds, valid, None)
        return Encoded(rows, hidden, ids, prep.patch_feats)
    first = clip_groups(model, batch)
    reps = sorted(set(first))
    group_B = torch.tensor([reps.index(f) for f in first])
    rows, patch_feats = _prefill_prefixes(model, batch, reps, prefix_cache)
    rows.select(group_B)
    suffix_ids = []
    for i in range(len(first)):
        p, n = _image_position(model, batch, i)
        if n == p + 1:
            raise ValueError(f"example {i}: no text after <image> to continue the prefix with")
        suffix_ids.append(batch["input_ids"][i, p + 1 : n])
    centres = batch["coord_centres"]
    suffix = [model.embed_text(s[None], centres[i][None])[0] for i, s in enumerate(suffix_ids)]
    embeds, valid = left_pad(suffix)
    ids, _ = left_pad(suffix_ids, -1)
    hidden, rows = extend(model.language_model.model, embeds, valid, rows)
    return Encoded(rows, hidden, ids, patch_feats[group_B.to(patch_feats.device)])


def _ground_view(enc: Encoded) -> PreparedInputs:
    """`ground_scores` reads the `<ground>` slot from input_ids and the patch features."""
    b = enc.ids_BS.shape[0]
    return PreparedInputs(
        embeds=enc.hidden_BSD,
        attention_mask=enc.ids_BS != -1,
        labels=torch.full_like(enc.ids_BS, IGNORE_INDEX),
        input_ids=enc.ids_BS,
        visual_start=torch.zeros(b, dtype=torch.long),
        patch_feats=enc.patch_feats,
        masked_views=torch.zeros(b, enc.patch_feats.shape[1], dtype=torch.bool),
    )


def _limit(model: Ross3DForCausalLM, max_new_tokens: int | None) -> int:
    return model.cfg.text.max_new_tokens if max_new_tokens is None else max_new_tokens


@torch.no_grad()
def generate_text(
    model: Ross3DForCausalLM,
    batch: dict,
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int | None = None,
    reuse_prefix: bool = True,
) -> list[list[int]]:
    """Greedy decoding of every row: new token ids per example, `<|im_end|>` excluded."""
    enc = encode(model, batch, reuse_prefix)
    eos = model.special_ids["im_end"]
    return greedy(
        model.language_model, enc.rows, enc.hidden_BSD[:, -1], _limit(model, max_new_tokens), eos
    )


@torch.no_grad()
def ground_logits(
    model: Ross3DForCausalLM, batch: dict, reuse_prefix: bool = True
) -> list[torch.Tensor | None]:
    """[K+1] candidate + zero-target logits per grounding example (None for the others)."""
    enc = encode(model, batch, reuse_prefix)
    return model.ground_scores(enc.hidden_BSD, _ground_view(enc), batch)


def _box_list(box) -> list[float]:
    return [float(x) for x in box]


def _eval_field(instruction: dict, key: str):
    if key not in instruction["eval"]:
        raise ValueError(f"instruction {instruction['id']}: eval has no {key!r} for scoring")
    return instruction["eval"][key]


def _text_record(instruction: dict, text: str, batch: dict, i: int) -> dict:
    task = instruction["task"]
    if task in QA_TASKS:
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


@torch.no_grad()
def predict(
    model: Ross3DForCausalLM,
    batch: dict,
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int | None = None,
    reuse_prefix: bool = True,
    prefix_cache: PrefixCache | None = None,
) -> list[dict]:
    """One prediction record per example of an eval batch (`collate_examples(train=False)`):
    one prefill for all rows, grounding scored from it, text rows then decoded together."""
    instructions = batch["instructions"]
    if any(ins is None for ins in instructions):
        raise ValueError("predict() needs an instruction for every example (got a vision-only one)")
    enc = encode(model, batch, reuse_prefix, prefix_cache)
    records: list[dict | None] = [None] * len(instructions)
    if batch["is_grounding"].any():
        threshold = model.cfg.grounding.multi_threshold
        scores = model.ground_scores(enc.hidden_BSD, _ground_view(enc), batch)
        for i, logits in enumerate(scores):
            if logits is not None:
                records[i] = _ground_record(
                    instructions[i], logits, batch["grounding"][i], batch["scene_ids"][i], threshold
                )
    text_rows = [i for i, ins in enumerate(instructions) if ins["task"] not in GROUNDING_TASKS]
    if text_rows:
        index = torch.tensor(text_rows, device=enc.hidden_BSD.device)
        rows = enc.rows.select(index)
        eos = model.special_ids["im_end"]
        limit = _limit(model, max_new_tokens)
        ids = greedy(model.language_model, rows, enc.hidden_BSD[index, -1], limit, eos)
        for i, new in zip(text_rows, ids, strict=True):
            text = tokenizer.decode(new, skip_special_tokens=True).strip()
            records[i] = _text_record(instructions[i], text, batch, i)
    return records


def select_rows(batch: dict, rows: list[int]) -> dict:
    """The sub-batch of the given example indices (tensors indexed on dim 0, lists picked)."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value[torch.tensor(rows, device=value.device)]
        else:
            out[key] = [value[r] for r in rows]
    return out
