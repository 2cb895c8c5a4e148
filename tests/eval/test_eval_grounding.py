"""ScanRefer and Multi3DRefer end to end on hand-computed fixtures."""

import pytest
from evalfiles import interval_box, write_json, write_jsonl
from ross3d_eval import EvalInputError, score


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


def write_label_map(path):
    """A few rows in the layout of ScanNet's scannetv2-labels.combined.tsv (column 1 raw name,
    column 7 nyu40 class); our own rows, not ScanNet's file."""
    header = "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class"
    rows = [
        ("1", "office chair", "chair", "9", "5", "4", "chair", "chair"),
        ("2", "chair", "chair", "9", "5", "4", "chair", "chair"),
        ("3", "monitor", "monitor", "9", "40", "7", "otherprop", "otherprop"),
        ("4", "tv", "tv", "9", "25", "11", "television", "television"),
        ("5", "bed", "bed", "9", "4", "1", "bed", "bed"),
    ]
    path.write_text("\n".join([header, *("\t".join(r) for r in rows)]) + "\n")
    return path


def test_scanrefer_eval_type_through_label_map(tmp_path):
    names = ["office_chair", "chair", "monitor", "tv", "lamp", "bed"]
    anns = [
        {"scene_id": "s", "object_id": str(i), "ann_id": "0", "object_name": n}
        for i, n in enumerate(names)
    ]
    boxes = {"s": {str(i): interval_box(3 * i, 3 * i + 1) for i in range(len(names))}}
    # Hit only the office chair (0) and the bed (5).
    preds = [
        {"scene_id": "s", "object_id": str(i), "ann_id": "0", "box": interval_box(3 * i, 3 * i + 1)}
        for i in (0, 5)
    ]
    files = {
        "predictions": write_jsonl(tmp_path / "p.jsonl", preds),
        "annotations": write_json(tmp_path / "a.json", anns),
        "boxes": write_json(tmp_path / "b.json", boxes),
    }
    plain = score("scanrefer", **files)
    assert plain.metrics["unique@0.5"] == pytest.approx(200 / 6)  # every name is its own class
    assert "multiple@0.5" not in plain.metrics
    mapped = score("scanrefer", **files, label_map=write_label_map(tmp_path / "labels.tsv"))
    # chair class: objects 0, 1 -> multiple; others (monitor, tv, unknown lamp) -> multiple;
    # bed -> unique.
    assert mapped.metrics["unique@0.5"] == 100.0
    assert mapped.metrics["multiple@0.5"] == pytest.approx(100 / 5)


def test_label_map_errors(tmp_path, scanrefer_files):
    bad = tmp_path / "labels.tsv"
    bad.write_text("header\nonly\ttwo\n")
    with pytest.raises(EvalInputError, match=r"labels\.tsv:2: expected >= 8"):
        score("scanrefer", **scanrefer_files, label_map=bad)
    with pytest.raises(ValueError, match="only used by scanrefer"):
        score("multi3drefer", **scanrefer_files, label_map=bad)
