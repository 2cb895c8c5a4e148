"""Scan2Cap (val): CIDEr, BLEU-4, METEOR, ROUGE-L at IoU 0.25 and 0.5.

Annotations: the ScanRefer val list (every description of an object is one of its references);
`boxes` = `{scene_id: {object_id: [6]}}`; predictions JSONL
`{"scene_id", "object_id", "caption", "box": [6]}` where `box` is the proposal captioned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ross3d_eval.boxes import box_iou_pairs
from ross3d_eval.inputs import (
    Record,
    get_field,
    get_id,
    gt_box,
    index_predictions,
    load_boxes,
    parse_box,
    read_json_list,
    read_jsonl,
)
from ross3d_eval.result import Result, check_missing, pct, with_scorer
from ross3d_eval.text import EMPTY_CAPTION, scan2cap_caption

THRESHOLDS = (0.25, 0.5)
REPORTED = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L")


def object_key(rec: Record) -> tuple[str, str]:
    return (get_field(rec, "scene_id", str), get_id(rec, "object_id"))


def load_references(annotations: Path) -> dict[tuple[str, str], list[str]]:
    """(scene_id, object_id) -> its descriptions, in file order."""
    refs: dict[tuple[str, str], list[str]] = {}
    for rec in read_json_list(annotations):
        refs.setdefault(object_key(rec), []).append(get_field(rec, "description", str))
    return refs


def evaluate(
    predictions: Path,
    annotations: Path,
    *,
    boxes: Path,
    caption_scorer=None,
    strict: bool = False,
    **_,
) -> Result:
    refs = load_references(annotations)
    gt_boxes = load_boxes(boxes)
    preds = index_predictions(read_jsonl(predictions), object_key, refs, "/".join)
    keys = list(refs)
    gt_N6 = np.stack([gt_box(gt_boxes, Path(boxes), *k) for k in keys])
    pred_N6 = np.zeros_like(gt_N6)
    captions = {}
    for i, key in enumerate(keys):
        if key in preds:
            rec = preds[key]
            pred_N6[i] = parse_box(get_field(rec, "box", list), rec.loc)
            captions[key] = scan2cap_caption(get_field(rec, "caption", str))
    found = np.array([k in captions for k in keys])
    ious = np.where(found, box_iou_pairs(pred_N6, gt_N6), 0.0)
    names = ["|".join(k) for k in keys]
    missing = [n for n, f in zip(names, found, strict=True) if not f]
    check_missing(predictions, len(keys), missing, strict)
    gts = {n: [scan2cap_caption(d) for d in refs[k]] for n, k in zip(names, keys, strict=True)}

    def run(scorer) -> dict[str, float]:
        metrics = {}
        for thr in THRESHOLDS:
            # An object whose captioned box misses the GT box at this IoU scores the empty caption.
            res = {
                n: [captions[k] if f and iou >= thr else EMPTY_CAPTION]
                for n, k, f, iou in zip(names, keys, found, ious, strict=True)
            }
            scores = scorer.score(gts, res)
            metrics.update({f"{m}@{thr}": pct(scores[m]) for m in REPORTED})
        return metrics

    metrics = with_scorer(caption_scorer, run)
    return Result("scan2cap", "ross3d", len(keys), len(missing), metrics, missing)
