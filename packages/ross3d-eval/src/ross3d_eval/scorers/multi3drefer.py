"""Multi3DRefer (val): F1@0.25 / F1@0.5 overall and per eval_type.

Annotations: the Multi3DRefer list (`scene_id`, `ann_id`, `object_ids`, `eval_type`); `boxes` =
`{scene_id: {object_id: [6]}}`; predictions JSONL `{"scene_id", "ann_id", "boxes": [[6], ...]}`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ross3d_benchmarks import MULTI3DREFER_EVAL_TYPES as EVAL_TYPES

from ross3d_eval.boxes import f1_scores
from ross3d_eval.inputs import (
    Record,
    get_field,
    get_id,
    gt_box,
    index_annotations,
    index_predictions,
    load_boxes,
    parse_box,
    read_json_list,
    read_jsonl,
)
from ross3d_eval.result import Result, pct

THRESHOLDS = (0.25, 0.5)


def query_key(rec: Record) -> tuple[str, str]:
    return (get_field(rec, "scene_id", str), get_id(rec, "ann_id"))


def describe(key: tuple[str, ...]) -> str:
    return "/".join(key)


def load_targets(
    annotations: Path, boxes_path: Path
) -> dict[tuple[str, str], tuple[str, np.ndarray]]:
    """(scene_id, ann_id) -> (eval_type, target boxes (G, 6)); eval_type must agree with G."""
    gt_boxes = load_boxes(boxes_path)
    anns = index_annotations(read_json_list(annotations), query_key, describe)
    out = {}
    for key, rec in anns.items():
        eval_type = get_field(rec, "eval_type", str)
        if eval_type not in EVAL_TYPES:
            raise rec.loc.error(
                f"eval_type must be one of {', '.join(EVAL_TYPES)}, got {eval_type!r}"
            )
        ids = get_field(rec, "object_ids", list)
        expected = {"zt": len(ids) == 0, "st": len(ids) == 1, "mt": len(ids) > 1}[eval_type[:2]]
        if not expected:
            raise rec.loc.error(f"eval_type {eval_type} does not fit {len(ids)} target object(s)")
        targets = [gt_box(gt_boxes, boxes_path, key[0], str(i)) for i in ids]
        out[key] = (eval_type, np.array(targets, dtype=np.float64).reshape(-1, 6))
    return out


def evaluate(predictions: Path, annotations: Path, *, boxes: Path, **_) -> Result:
    targets = load_targets(annotations, Path(boxes))
    preds = index_predictions(read_jsonl(predictions), query_key, targets, describe)
    f1 = np.zeros((len(targets), len(THRESHOLDS)))
    types = []
    for i, (key, (eval_type, gt_G6)) in enumerate(targets.items()):
        types.append(eval_type)
        if key not in preds:
            continue  # missing: scored 0 even for zero-target queries
        rec = preds[key]
        raw = get_field(rec, "boxes", list)
        pred_P6 = np.array(
            [parse_box(b, rec.loc, f"boxes[{j}]") for j, b in enumerate(raw)], dtype=np.float64
        ).reshape(-1, 6)
        f1[i] = f1_scores(pred_P6, gt_G6, THRESHOLDS)
    type_arr = np.array(types)
    metrics = {}
    groups = [("F1", np.ones(len(types), dtype=bool))] + [(t, type_arr == t) for t in EVAL_TYPES]
    for name, mask in groups:
        if not mask.any():
            continue
        for j, k in enumerate(THRESHOLDS):
            metrics[f"{name}@{k}"] = pct(f1[mask, j].mean())
    missing = [describe(k) for k in targets if k not in preds]
    return Result("multi3drefer", "ross3d", len(targets), len(missing), metrics, missing)
