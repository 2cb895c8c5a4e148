"""ScanRefer (val): Acc@0.25 / Acc@0.5 overall, unique and multiple.

Annotations: the ScanRefer list (`scene_id`, `object_id`, `ann_id`, `object_name`, optional
`eval_type` "unique"/"multiple"); optional `label_map` = ScanNet's
scannetv2-labels.combined.tsv (exact ScanRefer classes for deriving eval_type); `boxes` = `{scene_id: {object_id: [6]}}`; predictions JSONL
`{"scene_id", "object_id", "ann_id", "box": [6]}`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ross3d_benchmarks import SCANREFER_EVAL_TYPES as EVAL_TYPES
from ross3d_benchmarks import eval_types, read_label_map

from ross3d_eval.boxes import box_iou_pairs
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


def query_key(rec: Record) -> tuple[str, str, str]:
    return (get_field(rec, "scene_id", str), get_id(rec, "object_id"), get_id(rec, "ann_id"))


def describe(key: tuple[str, ...]) -> str:
    return "/".join(key)


def derive_eval_types(
    records: list[Record], label_map: dict[str, str] | None = None
) -> dict[tuple[str, str, str], str]:
    """unique / multiple per query by the one definition (`benchmarks.eval_types`); an explicit
    `eval_type` on an item wins."""
    objects = [
        (scene, obj, get_field(rec, "object_name", str))
        for rec in records
        for scene, obj, _ in [query_key(rec)]
    ]
    derived = eval_types(objects, label_map)
    types = {}
    for rec in records:
        key = query_key(rec)
        given = rec.data.get("eval_type")
        if given is not None and given not in EVAL_TYPES:
            raise rec.loc.error(f'eval_type must be "unique" or "multiple", got {given!r}')
        types[key] = given if given is not None else derived[key[:2]]
    return types


def evaluate(
    predictions: Path, annotations: Path, *, boxes: Path, label_map: Path | None = None, **_
) -> Result:
    records = read_json_list(annotations)
    anns = index_annotations(records, query_key, describe)
    types = derive_eval_types(records, None if label_map is None else read_label_map(label_map))
    gt_boxes = load_boxes(boxes)
    preds = index_predictions(read_jsonl(predictions), query_key, anns, describe)
    keys = list(anns)
    gt_N6 = np.stack([gt_box(gt_boxes, Path(boxes), k[0], k[1]) for k in keys])
    pred_N6 = np.zeros_like(gt_N6)
    found = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key in preds:
            rec = preds[key]
            pred_N6[i] = parse_box(get_field(rec, "box", list), rec.loc)
            found[i] = True
    ious = np.where(found, box_iou_pairs(pred_N6, gt_N6), 0.0)
    type_arr = np.array([types[k] for k in keys])
    metrics = {}
    groups = [("Acc", np.ones(len(keys), dtype=bool))]
    groups += [(t, type_arr == t) for t in EVAL_TYPES]
    for name, mask in groups:
        if not mask.any():
            continue
        for k in THRESHOLDS:
            metrics[f"{name}@{k}"] = pct(np.mean(ious[mask] >= k))
    missing = [describe(k) for k, f in zip(keys, found, strict=True) if not f]
    return Result("scanrefer", "ross3d", len(keys), len(missing), metrics, missing)
