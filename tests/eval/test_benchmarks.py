"""ross3d_benchmarks.rules: the one definition of task names, prediction keys, ScanRefer
unique / multiple and boxes.json (hand-made cases)."""

import json

import pytest
from ross3d_benchmarks import (
    TASKS,
    eval_types,
    prediction_key,
    read_boxes_json,
    read_label_map,
    scanrefer_class,
    write_boxes_json,
)
from ross3d_eval.errors import EvalInputError


def test_prediction_keys_per_task():
    assert prediction_key("scanqa", {"question_id": "q1", "answer": "x"}) == ("q1",)
    assert prediction_key("sqa3d", {"question_id": 7, "answer": "x"}) == ("7",)
    assert prediction_key("scan2cap", {"scene_id": "s", "object_id": 3}) == ("s", "3")
    assert prediction_key("scanrefer", {"scene_id": "s", "object_id": "3", "ann_id": 0}) == (
        "s",
        "3",
        "0",
    )
    assert prediction_key("multi3drefer", {"scene_id": "s", "ann_id": 2}) == ("s", "2")
    with pytest.raises(KeyError, match="ann_id"):
        prediction_key("multi3drefer", {"scene_id": "s"})
    with pytest.raises(ValueError, match="unknown task"):
        prediction_key("scannet", {})
    assert len(set(TASKS)) == 5


def test_scanrefer_classes_through_the_label_map(tmp_path):
    """ScanRefer lib/dataset.py _get_raw2label: column 1 -> column 7 when one of the 18 classes."""
    tsv = tmp_path / "labels.tsv"
    header = "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\n"
    tsv.write_text(
        header + "1\tshower curtain\tx\t1\t28\t13\tx\tshower curtain\n"
        "2\tkitchen cabinet\tx\t1\t3\t6\tx\tcabinet\n"
        "3\tfloor\tx\t1\t2\t5\tx\tfloor\n"
    )
    label_map = read_label_map(tsv)
    assert label_map == {
        "shower curtain": "shower curtain",
        "kitchen cabinet": "cabinet",
        "floor": "others",
    }
    assert scanrefer_class("shower_curtain", label_map) == "shower curtain"  # "_" read as " "
    assert scanrefer_class("piano", label_map) == "others"  # not in the map
    assert scanrefer_class("Piano", None) == "Piano"  # without a map: the name itself


def test_unique_multiple_counts_distinct_objects_per_scene():
    label_map = {"chair": "chair", "office chair": "chair", "table": "table"}
    objects = [
        ("a", "1", "chair"),
        ("a", "1", "chair"),  # a second description of the same object
        ("a", "2", "table"),
        ("a", "3", "office_chair"),
        ("b", "1", "table"),
        ("b", "9", "lamp"),
        ("b", "8", "sofa"),  # lamp and sofa are both "others"
    ]
    assert eval_types(objects, label_map) == {
        ("a", "1"): "multiple",
        ("a", "2"): "unique",
        ("a", "3"): "multiple",
        ("b", "1"): "unique",
        ("b", "9"): "multiple",
        ("b", "8"): "multiple",
    }
    by_name = eval_types(objects, None)
    assert by_name[("a", "1")] == "unique" and by_name[("b", "9")] == "unique"


def test_boxes_json_round_trip_and_errors(tmp_path):
    table = {"s1": {2: [0.0, 1.0, 2.0, 1.0, 1.0, 1.0], 1: [1, 1, 1, 0.5, 0.5, 0.5]}}
    write_boxes_json(table, tmp_path / "boxes.json")
    assert list(json.loads((tmp_path / "boxes.json").read_text())["s1"]) == ["1", "2"]
    assert read_boxes_json(tmp_path / "boxes.json") == {
        "s1": {1: [1.0, 1.0, 1.0, 0.5, 0.5, 0.5], 2: [0.0, 1.0, 2.0, 1.0, 1.0, 1.0]}
    }
    bad = {
        "size": {"s": {"1": [0, 0, 0, -1, 1, 1]}},
        "id": {"s": {"x": [0, 0, 0, 1, 1, 1]}},
        "len": {"s": {"1": [0, 0, 0]}},
        "nan": {"s": {"1": [0, 0, float("nan"), 1, 1, 1]}},
    }
    for name, data in bad.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(EvalInputError, match=rf"{name}\.json: scene s object"):
            read_boxes_json(path)
    with pytest.raises(EvalInputError, match="file not found"):
        read_boxes_json(tmp_path / "missing.json")
