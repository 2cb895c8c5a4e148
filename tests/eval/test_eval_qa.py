"""ScanQA and SQA3D end to end: hand-computed EM / EM-R, caption metrics equal to
pycocoevalcap's own scorers called directly on the same strings."""

import pytest
from evalfiles import direct_caption_metrics, write_json, write_jsonl
from ross3d_eval import score

SCANQA_ANNS = [
    {"question_id": "q0", "scene_id": "s0", "answers": ["brown chair", "chair"]},
    {"question_id": "q1", "scene_id": "s0", "answers": ["2"]},
    {"question_id": "q2", "scene_id": "s1", "answers": ["on the left of the bed"]},
    {"question_id": "q3", "scene_id": "s1", "answers": ["white"]},
]
SCANQA_PREDS = [
    {"question_id": "q0", "answer": "chair"},
    {"question_id": "q1", "answer": "Two."},
    {"question_id": "q2", "answer": "left of the bed"},
]  # q3 missing


@pytest.fixture
def scanqa_files(tmp_path):
    return {
        "annotations": write_json(tmp_path / "ScanQA_v1.0_val.json", SCANQA_ANNS),
        "predictions": write_jsonl(tmp_path / "pred.jsonl", SCANQA_PREDS),
    }


def test_scanqa_ross3d(scanqa_files, caption_scorer):
    r = score("scanqa", **scanqa_files, caption_scorer=caption_scorer)
    assert (r.count, r.missing, r.missing_ids) == (4, 1, ["q3"])
    assert r.metrics["EM"] == 25.0  # only q0's raw "chair" is in its answer list
    assert "EM-R" not in r.metrics
    res = {"q0": ["chair"], "q1": ["Two"], "q2": ["left of the bed"], "q3": [""]}
    gts = {a["question_id"]: a["answers"] for a in SCANQA_ANNS}
    expected = direct_caption_metrics(caption_scorer, gts, res)
    assert {k: r.metrics[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert 0 < r.metrics["METEOR"] < 100 and r.metrics["CIDEr"] > 0


def test_scanqa_leo(scanqa_files, caption_scorer):
    r = score("scanqa", **scanqa_files, protocol="leo", caption_scorer=caption_scorer)
    # q0: "chair" is contained in the first answer "brown chair" -> (0, 1) under LEO's order;
    # q1: "two" == "two" -> (1, 1); q2: "left of bed" inside "on left of bed" -> (0, 1).
    assert r.metrics["EM"] == 25.0
    assert r.metrics["EM-R"] == 75.0
    res = {"q0": ["chair"], "q1": ["two"], "q2": ["left of bed"], "q3": [""]}
    gts = {"q0": ["brown chair", "chair"], "q1": ["two"], "q2": ["on left of bed"], "q3": ["white"]}
    expected = direct_caption_metrics(caption_scorer, gts, res)
    assert {k: r.metrics[k] for k in expected} == pytest.approx(expected, rel=1e-12)


def test_scanqa_official_ptb(scanqa_files, caption_scorer):
    r = score("scanqa", **scanqa_files, protocol="official", caption_scorer=caption_scorer)
    assert r.metrics["EM"] == 25.0
    # PTB tokenisation: lower-case, punctuation tokens dropped ("Two." -> "two").
    res = {"q0": ["chair"], "q1": ["two"], "q2": ["left of the bed"], "q3": [""]}
    gts = {a["question_id"]: a["answers"] for a in SCANQA_ANNS}
    expected = direct_caption_metrics(caption_scorer, gts, res)
    assert {k: r.metrics[k] for k in expected} == pytest.approx(expected, rel=1e-12)


SQA_ITEMS = [  # (question_id, question, answer, prediction or None)
    (1, "What is on the desk?", "Two", "2"),  # clean -> two == two
    (2, "Is the door open?", "yes", "Yes."),  # exact after cleaning
    (3, "How should I turn?", "turn left", "left"),  # EM-R only
    (4, "Can I sit down?", "no", "yes"),  # wrong
    (5, "Which is closer?", "the table", "table"),  # article dropped
    (6, "Where is the sink?", "kitchen", None),  # missing
    (7, "What colour is it?", "brown", "dark brown"),  # EM-R only
]


@pytest.fixture
def sqa3d_files(tmp_path):
    questions = {
        "questions": [
            {"question_id": q, "question": text, "scene_id": "s0", "situation": "I am standing."}
            for q, text, _, _ in SQA_ITEMS
        ]
    }
    anns = {
        "annotations": [
            {"question_id": q, "scene_id": "s0", "answers": [{"answer": a, "answer_id": 1}]}
            for q, _, a, _ in SQA_ITEMS
        ]
    }
    preds = [{"question_id": q, "answer": p} for q, _, _, p in SQA_ITEMS if p is not None]
    return {
        "questions": write_json(tmp_path / "v1_balanced_questions_test_scannetv2.json", questions),
        "annotations": write_json(tmp_path / "v1_balanced_sqa_annotations_test.json", anns),
        "predictions": write_jsonl(tmp_path / "pred.jsonl", preds),
    }


@pytest.mark.parametrize("protocol", ["ross3d", "leo"])
def test_sqa3d_metrics(sqa3d_files, protocol):
    r = score("sqa3d", **sqa3d_files, protocol=protocol)
    assert (r.count, r.missing, r.missing_ids) == (7, 1, ["6"])
    expected = {
        "EM": 300 / 7,
        "EM-R": 500 / 7,
        "What": 50.0,
        "Is": 100.0,
        "How": 0.0,
        "Can": 0.0,
        "Which": 100.0,
        "Others": 0.0,
    }
    assert r.metrics == pytest.approx(expected)
