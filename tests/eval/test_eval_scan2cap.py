"""Scan2Cap end to end: IoU gating, 'sos ... eos' captions, empty caption for unmatched or
missing objects, metrics equal to pycocoevalcap's scorers called directly."""

import pytest
from evalfiles import interval_box, write_json, write_jsonl
from ross3d_eval import score
from test_eval_qa import direct_caption_metrics


def ref(text: str) -> str:
    """The reference rule, written out independently of ross3d_eval.text."""
    return "sos " + text.replace(".", " . ").replace(",", " , ").lower() + " eos"


ANNS = [
    {
        "scene_id": "s0",
        "object_id": "0",
        "ann_id": "0",
        "object_name": "chair",
        "description": "This is a brown chair. It is next to the table.",
    },
    {
        "scene_id": "s0",
        "object_id": "0",
        "ann_id": "1",
        "object_name": "chair",
        "description": "A brown chair, by the table.",
    },
    {
        "scene_id": "s0",
        "object_id": "1",
        "ann_id": "0",
        "object_name": "table",
        "description": "The table is near the wall.",
    },
    {
        "scene_id": "s0",
        "object_id": "2",
        "ann_id": "0",
        "object_name": "lamp",
        "description": "A tall lamp in the corner.",
    },
]
PREDS = [
    {
        "scene_id": "s0",
        "object_id": "0",
        "caption": "A brown chair next to the table.",
        "box": interval_box(0, 1),
    },  # IoU 1
    {
        "scene_id": "s0",
        "object_id": 1,
        "caption": "a table, near the wall",
        "box": interval_box(3.5, 4.5),
    },  # IoU 1/3: counts at 0.25 only
]  # object 2 missing


def test_scan2cap_metrics(tmp_path, caption_scorer):
    boxes = {"s0": {"0": interval_box(0, 1), "1": interval_box(3, 4), "2": interval_box(6, 7)}}
    r = score(
        "scan2cap",
        write_jsonl(tmp_path / "pred.jsonl", PREDS),
        write_json(tmp_path / "ScanRefer_filtered_val.json", ANNS),
        boxes=write_json(tmp_path / "boxes.json", boxes),
        caption_scorer=caption_scorer,
    )
    assert (r.count, r.missing, r.missing_ids) == (3, 1, ["s0|2"])
    gts = {
        "s0|0": [ref(ANNS[0]["description"]), ref(ANNS[1]["description"])],
        "s0|1": [ref(ANNS[2]["description"])],
        "s0|2": [ref(ANNS[3]["description"])],
    }
    chair, table = ref(PREDS[0]["caption"]), ref(PREDS[1]["caption"])
    at = {
        0.25: {"s0|0": [chair], "s0|1": [table], "s0|2": ["sos eos"]},
        0.5: {"s0|0": [chair], "s0|1": ["sos eos"], "s0|2": ["sos eos"]},
    }
    for thr, res in at.items():
        expected = direct_caption_metrics(caption_scorer, gts, res)
        for m in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L"):
            assert r.metrics[f"{m}@{thr}"] == pytest.approx(expected[m], rel=1e-12), (m, thr)
    assert r.metrics["CIDEr@0.25"] > r.metrics["CIDEr@0.5"] > 0
