"""ScanRefer and Multi3DRefer end to end on hand-computed fixtures."""

import pytest
from evalfiles import interval_box, write_json, write_jsonl
from ross3d_eval import score


def test_scanrefer_metrics(scanrefer_files):
    r = score("scanrefer", **scanrefer_files)
    assert (r.count, r.missing, r.missing_ids) == (5, 1, ["s0/1/0"])
    # IoUs: 1, 1/3, 0, missing, 0.5. Types: chair x2 in s0 -> multiple, table -> unique,
    # s1 door -> multiple (given).
    expected = {
        "Acc@0.25": 60.0,
        "Acc@0.5": 40.0,
        "unique@0.25": 50.0,
        "unique@0.5": 0.0,
        "multiple@0.25": 200 / 3,
        "multiple@0.5": 200 / 3,
    }
    assert r.metrics == pytest.approx(expected)
    assert list(r.metrics) == list(expected)


def test_scanrefer_eval_type_derivation_reads_underscores_as_spaces(tmp_path):
    anns = [
        {"scene_id": "s", "object_id": "0", "ann_id": "0", "object_name": "office_chair"},
        {"scene_id": "s", "object_id": "1", "ann_id": "0", "object_name": "office chair"},
        {"scene_id": "s", "object_id": "2", "ann_id": "0", "object_name": "chair"},
    ]
    boxes = {"s": {str(i): interval_box(3 * i, 3 * i + 1) for i in range(3)}}
    preds = [{"scene_id": "s", "object_id": "2", "ann_id": "0", "box": interval_box(6, 7)}]
    r = score(
        "scanrefer",
        write_jsonl(tmp_path / "p.jsonl", preds),
        write_json(tmp_path / "a.json", anns),
        boxes=write_json(tmp_path / "b.json", boxes),
    )
    # object 2 is the only "chair" -> unique, hit; both office chairs -> multiple, missing.
    assert r.metrics["unique@0.5"] == 100.0
    assert r.metrics["multiple@0.5"] == 0.0


@pytest.fixture
def multi3drefer_files(tmp_path):
    boxes = {
        "s0": {
            "0": interval_box(0, 1),
            "1": interval_box(1, 2),
            "2": interval_box(5, 6),
            "3": interval_box(8, 9),
        }
    }
    anns = [
        {"scene_id": "s0", "ann_id": 0, "object_ids": [], "eval_type": "zt_w_d"},
        {"scene_id": "s0", "ann_id": 1, "object_ids": [], "eval_type": "zt_wo_d"},
        {"scene_id": "s0", "ann_id": 2, "object_ids": [0], "eval_type": "st_w_d"},
        {"scene_id": "s0", "ann_id": 3, "object_ids": [1], "eval_type": "st_wo_d"},
        {"scene_id": "s0", "ann_id": 4, "object_ids": [0, 1], "eval_type": "mt"},
        {"scene_id": "s0", "ann_id": 5, "object_ids": [2, 3], "eval_type": "mt"},
    ]
    preds = [
        {"scene_id": "s0", "ann_id": 0, "boxes": []},  # zero-target, nothing: 1
        {"scene_id": "s0", "ann_id": 1, "boxes": [interval_box(0, 1)]},  # zero-target hit: 0
        {"scene_id": "s0", "ann_id": 2, "boxes": [interval_box(0, 1)]},  # IoU 1
        {"scene_id": "s0", "ann_id": 3, "boxes": [interval_box(1.5, 2.5)]},  # IoU 1/3
        # Hungarian case: 0.375 / 0.375 and 0.9 / 0 -> TP 2 at 0.25, 1 at 0.5
        {"scene_id": "s0", "ann_id": 4, "boxes": [interval_box(0.4, 1.6), interval_box(0, 0.9)]},
    ]  # ann 5 missing: 0
    return {
        "annotations": write_json(tmp_path / "m3dref_val.json", anns),
        "boxes": write_json(tmp_path / "boxes.json", boxes),
        "predictions": write_jsonl(tmp_path / "pred.jsonl", preds),
    }


def test_multi3drefer_metrics(multi3drefer_files):
    r = score("multi3drefer", **multi3drefer_files)
    assert (r.count, r.missing) == (6, 1)
    expected = {
        "F1@0.25": 400 / 6,
        "F1@0.5": 250 / 6,
        "zt_w_d@0.25": 100.0,
        "zt_w_d@0.5": 100.0,
        "zt_wo_d@0.25": 0.0,
        "zt_wo_d@0.5": 0.0,
        "st_w_d@0.25": 100.0,
        "st_w_d@0.5": 100.0,
        "st_wo_d@0.25": 100.0,
        "st_wo_d@0.5": 0.0,
        "mt@0.25": 50.0,
        "mt@0.5": 25.0,
    }
    assert r.metrics == pytest.approx(expected)


def test_missing_zero_target_prediction_scores_zero(tmp_path):
    anns = [{"scene_id": "s", "ann_id": 0, "object_ids": [], "eval_type": "zt_wo_d"}]
    r = score(
        "multi3drefer",
        write_jsonl(tmp_path / "p.jsonl", []),
        write_json(tmp_path / "a.json", anns),
        boxes=write_json(tmp_path / "b.json", {"s": {}}),
    )
    assert r.missing == 1
    assert r.metrics["F1@0.25"] == 0.0
