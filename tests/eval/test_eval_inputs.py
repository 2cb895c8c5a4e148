"""Bad input gives a clear error naming the file and the line (or list item)."""

import json

import pytest
from evalfiles import interval_box, write_json, write_jsonl
from ross3d_eval import EvalInputError, score


def pred_row(obj="0", ann="0", box=None, scene="s0"):
    return {
        "scene_id": scene,
        "object_id": obj,
        "ann_id": ann,
        "box": interval_box(0, 1) if box is None else box,
    }


def score_scanrefer(files, pred_path):
    return score("scanrefer", pred_path, files["annotations"], boxes=files["boxes"])


def raises_at(match: str, where: str):
    return pytest.raises(EvalInputError, match=rf"{where}.*{match}")


def test_malformed_line(scanrefer_files, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(pred_row()) + "\n{not json\n")
    with raises_at("malformed JSON", r"p\.jsonl:2"):
        score_scanrefer(scanrefer_files, path)


def test_not_an_object(scanrefer_files, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n[1, 2]\n")
    with raises_at("expected a JSON object", r"p\.jsonl:2"):
        score_scanrefer(scanrefer_files, path)


def test_unknown_id(scanrefer_files, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pred_row(obj="9")])
    with raises_at("unknown id s0/9/0", r"p\.jsonl:1"):
        score_scanrefer(scanrefer_files, path)


def test_duplicate_id(scanrefer_files, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pred_row(), pred_row(obj=0, ann=0)])
    with raises_at(r"duplicate prediction for s0/0/0 \(first at line 1\)", r"p\.jsonl:2"):
        score_scanrefer(scanrefer_files, path)


def test_nan_box(scanrefer_files, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"scene_id": "s0", "object_id": "0", "ann_id": "0", "box": [0, 0, 0, NaN, 1, 1]}\n'
    )
    with raises_at("non-finite", r"p\.jsonl:1"):
        score_scanrefer(scanrefer_files, path)


def test_negative_size(scanrefer_files, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pred_row(box=[0, 0, 0, 1, -1, 1])])
    with raises_at("negative size", r"p\.jsonl:1"):
        score_scanrefer(scanrefer_files, path)


def test_wrong_box_length_and_missing_field(scanrefer_files, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [pred_row(box=[0, 0, 0])])
    with raises_at("list of 6 numbers", r"p\.jsonl:1"):
        score_scanrefer(scanrefer_files, path)
    path = write_jsonl(tmp_path / "q.jsonl", [{"scene_id": "s0", "object_id": "0"}])
    with raises_at('missing field "ann_id"', r"q\.jsonl:1"):
        score_scanrefer(scanrefer_files, path)


def test_bad_box_in_multi_box_prediction(tmp_path):
    anns = [{"scene_id": "s", "ann_id": 0, "object_ids": [0], "eval_type": "st_w_d"}]
    preds = [{"scene_id": "s", "ann_id": 0, "boxes": [interval_box(0, 1), [0, 0, 0, 1, 1, -2]]}]
    with raises_at(r"boxes\[1\] has a negative size", r"p\.jsonl:1"):
        score(
            "multi3drefer",
            write_jsonl(tmp_path / "p.jsonl", preds),
            write_json(tmp_path / "a.json", anns),
            boxes=write_json(tmp_path / "b.json", {"s": {"0": interval_box(0, 1)}}),
        )


def test_multi3drefer_eval_type_must_fit_targets(tmp_path):
    anns = [{"scene_id": "s", "ann_id": 0, "object_ids": [0, 1], "eval_type": "st_w_d"}]
    with raises_at("does not fit 2 target", r"a\.json \(item 0\)"):
        score(
            "multi3drefer",
            write_jsonl(tmp_path / "p.jsonl", []),
            write_json(tmp_path / "a.json", anns),
            boxes=write_json(tmp_path / "b.json", {"s": {}}),
        )


def test_bad_gt_box_and_absent_gt_box(scanrefer_files, tmp_path):
    bad = write_json(tmp_path / "bad_boxes.json", {"s0": {"0": [0, 0, 0, 1, 1, float("nan")]}})
    with raises_at("scene s0 object 0: box has a non-finite", r"bad_boxes\.json"):
        score(
            "scanrefer", scanrefer_files["predictions"], scanrefer_files["annotations"], boxes=bad
        )
    few = write_json(tmp_path / "few_boxes.json", {"s0": {"0": interval_box(0, 1)}})
    with raises_at("no box for scene s0 object 2", r"few_boxes\.json"):
        score(
            "scanrefer", scanrefer_files["predictions"], scanrefer_files["annotations"], boxes=few
        )


def test_sqa3d_question_id_must_be_int(tmp_path):
    questions = write_json(
        tmp_path / "q.json", {"questions": [{"question_id": 1, "question": "What?"}]}
    )
    anns = write_json(
        tmp_path / "a.json", {"annotations": [{"question_id": 1, "answers": [{"answer": "x"}]}]}
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [{"question_id": "1", "answer": "x"}])
    with raises_at('"question_id" must be an integer, got str', r"p\.jsonl:1"):
        score("sqa3d", preds, anns, questions=questions)


def test_duplicate_annotation_and_missing_file(tmp_path):
    anns = [{"question_id": "a", "answers": ["x"]}, {"question_id": "a", "answers": ["y"]}]
    preds = write_jsonl(tmp_path / "p.jsonl", [])
    with raises_at("duplicate annotation for a", r"ann\.json \(item 1\)"):
        score("scanqa", preds, write_json(tmp_path / "ann.json", anns))
    with raises_at("file not found", r"nope\.jsonl"):
        score("scanqa", tmp_path / "nope.jsonl", tmp_path / "ann.json")


def test_bad_arguments(scanrefer_files):
    with pytest.raises(ValueError, match="unknown benchmark"):
        score("scannet", scanrefer_files["predictions"], scanrefer_files["annotations"])
    with pytest.raises(ValueError, match="scanrefer needs --boxes"):
        score("scanrefer", scanrefer_files["predictions"], scanrefer_files["annotations"])
    with pytest.raises(ValueError, match="protocol 'leo' is not defined for scanrefer"):
        score("scanrefer", **scanrefer_files, protocol="leo")
