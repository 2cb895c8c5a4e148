"""Axis-aligned IoU and Hungarian-matched F1 with hand-computed answers."""

import json

import numpy as np
import pytest
from ross3d_eval.boxes import box_iou_matrix, box_iou_pairs, f1_scores, matched_true_positives


def interval(lo: float, hi: float) -> list[float]:
    """A box spanning [lo, hi] in x and the unit cube's cross-section in y, z."""
    return [(lo + hi) / 2, 0.0, 0.0, hi - lo, 1.0, 1.0]


def test_iou_known_values():
    a = np.array([interval(0, 1), interval(0, 1), interval(0, 1), [0, 0, 0, 1, 1, 1]])
    b = np.array([interval(0, 1), interval(0.5, 1.5), interval(2, 3), [0, 0, 0, 2, 2, 2]])
    # identical; half overlap 0.5 / 1.5; disjoint; unit cube inside a 2-cube 1 / 8
    np.testing.assert_allclose(box_iou_pairs(a, b), [1.0, 1 / 3, 0.0, 1 / 8])


def test_iou_touching_and_degenerate():
    assert box_iou_pairs(interval(0, 1), interval(1, 2))[0] == 0.0  # faces touch
    flat = [0, 0, 0, 0, 0, 0]
    assert box_iou_pairs(flat, flat)[0] == 0.0  # empty union -> 0, not NaN


def test_iou_matrix_matches_pairs():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 2, (4, 3)), rng.uniform(0.5, 1.5, (4, 3))], axis=1)
    b = np.concatenate([rng.uniform(0, 2, (3, 3)), rng.uniform(0.5, 1.5, (3, 3))], axis=1)
    m = box_iou_matrix(a, b)
    assert m.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert m[i, j] == pytest.approx(box_iou_pairs(a[i], b[j])[0])


def test_hungarian_beats_greedy():
    gts = np.array([interval(0, 1), interval(1, 2)])
    # pred A overlaps both targets with IoU 0.6 / 1.6 = 0.375; pred B is 0.9 on target 1.
    preds = np.array([interval(0.4, 1.6), interval(0, 0.9)])
    np.testing.assert_allclose(box_iou_matrix(preds, gts), [[0.375, 0.375], [0.9, 0.0]])
    # Matching B-target1 and A-target2: 2 TPs at 0.25, 1 at 0.5 (greedy in order gives 1 / 1).
    assert matched_true_positives(preds, gts, (0.25, 0.5)) == (2, 1)
    assert f1_scores(preds, gts, (0.25, 0.5)) == [1.0, 0.5]


def test_more_predictions_than_targets():
    gts = np.array([interval(0, 1)])
    preds = np.array([interval(0, 1), interval(0, 1), interval(5, 6)])
    # One target can match one prediction: TP = 1, F1 = 2 * 1 / (3 + 1).
    assert f1_scores(preds, gts, (0.25, 0.5)) == [0.5, 0.5]


def test_fewer_predictions_than_targets():
    gts = np.array([interval(0, 1), interval(3, 4), interval(6, 7)])
    preds = np.array([interval(3, 4)])
    assert f1_scores(preds, gts, (0.5,)) == [pytest.approx(2 / 4)]


def test_zero_target_and_empty_prediction():
    empty = np.zeros((0, 6))
    one = np.array([interval(0, 1)])
    assert f1_scores(empty, empty, (0.25, 0.5)) == [1.0, 1.0]  # zero-target, nothing predicted
    assert f1_scores(one, empty, (0.25, 0.5)) == [0.0, 0.0]  # zero-target, something predicted
    assert f1_scores(empty, one, (0.25, 0.5)) == [0.0, 0.0]  # targets, nothing predicted


def test_threshold_is_inclusive():
    gts = np.array([interval(0, 1)])
    preds = np.array([interval(0, 2)])  # IoU exactly 0.5
    assert f1_scores(preds, gts, (0.5,)) == [1.0]


def test_box_files_of_both_layouts_read_to_the_same_table(tmp_path):
    """One reader (ross3d_benchmarks.read_boxes_json): our boxes.json and the published
    scannet_val_pred_box.json layout ({"scannet/<scene>": [box, ...]}, ids = list positions)."""
    from ross3d_benchmarks import read_boxes_json, write_boxes_json

    a, b = [1.0, 2.0, 3.0, 0.5, 0.5, 0.5], [0.0, 0.0, 1.0, 2.0, 2.0, 2.0]
    ours, published = tmp_path / "boxes.json", tmp_path / "scannet_val_pred_box.json"
    ours.write_text(json.dumps({"scene0011_00": {"0": a, "1": b}, "scene0012_00": {}}))
    published.write_text(json.dumps({"scannet/scene0011_00": [a, b], "scannet/scene0012_00": []}))
    expected = {"scene0011_00": {0: a, 1: b}, "scene0012_00": {}}
    assert read_boxes_json(ours) == read_boxes_json(published) == expected
    written = tmp_path / "again.json"
    write_boxes_json(expected, written, layout="published")
    assert json.loads(written.read_text()) == json.loads(published.read_text())
    with pytest.raises(ValueError, match=r"not 0\.\.1"):
        write_boxes_json({"s": {0: a, 5: b}}, written, layout="published")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scannet/s": [[1, 2, 3]]}, r"scene scannet/s object 0: box must be a list of 6"),
        ({"scannet/s": [[0, 0, 0, -1, 1, 1]]}, r"scene scannet/s object 0: .*negative size"),
        ({"a": {"0": [0, 0, 0, 1, 1, 1]}, "scannet/b": []}, r"not a mix"),
        ({"scannet/s": [], "other/s": []}, r"scene s appears twice"),
        ({"s": 3}, r"not a mix or anything else"),
    ],
)
def test_bad_box_files_name_the_file_and_entry(tmp_path, data, message):
    from ross3d_benchmarks import read_boxes_json

    path = tmp_path / "pred_box.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as err:
        read_boxes_json(path)
    assert "pred_box.json" in str(err.value)
