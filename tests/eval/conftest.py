"""Shared fixtures for ross3d-eval tests: one METEOR process per test session, file writers."""

from __future__ import annotations

import pytest
from evalfiles import interval_box, write_json, write_jsonl
from ross3d_eval.captions import CaptionScorer


@pytest.fixture(scope="session")
def caption_scorer():
    """One CaptionScorer (one METEOR JVM, slow to start) shared by every test."""
    with CaptionScorer() as scorer:
        yield scorer


@pytest.fixture
def scanrefer_files(tmp_path):
    """5 queries with hand-computed IoUs 1, 1/3, 0, missing, 0.5 (see test_eval_grounding)."""
    anns = [
        {"scene_id": "s0", "object_id": "0", "ann_id": "0", "object_name": "chair"},
        {"scene_id": "s0", "object_id": "2", "ann_id": "0", "object_name": "table"},
        {"scene_id": "s0", "object_id": "2", "ann_id": "1", "object_name": "table"},
        {"scene_id": "s0", "object_id": "1", "ann_id": "0", "object_name": "chair"},
        {
            "scene_id": "s1",
            "object_id": "0",
            "ann_id": "0",
            "object_name": "door",
            "eval_type": "multiple",
        },
    ]
    boxes = {
        "s0": {"0": interval_box(0, 1), "1": interval_box(3, 4), "2": interval_box(6, 7)},
        "s1": {"0": interval_box(0, 1)},
    }
    preds = [
        {"scene_id": "s0", "object_id": "0", "ann_id": "0", "box": interval_box(0, 1)},
        {"scene_id": "s0", "object_id": 2, "ann_id": 0, "box": interval_box(6.5, 7.5)},
        {"scene_id": "s0", "object_id": "2", "ann_id": "1", "box": interval_box(10, 11)},
        {"scene_id": "s1", "object_id": "0", "ann_id": "0", "box": interval_box(0, 2)},
    ]
    return {
        "annotations": write_json(tmp_path / "scanrefer_val.json", anns),
        "boxes": write_json(tmp_path / "boxes.json", boxes),
        "predictions": write_jsonl(tmp_path / "pred.jsonl", preds),
    }
