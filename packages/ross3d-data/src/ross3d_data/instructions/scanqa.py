"""ScanQA (ATR-DBI/ScanQA ``ScanQA_v1.0_{train,val,test_w_obj,test_wo_obj}.json``).

Rows: ``{"question_id": "train-scene0000-0", "scene_id", "question", "answers": [str],
"object_ids": [int], "object_names": [str]}``; test files have no answers (and
``test_wo_obj`` no objects). Train: one instruction per (question, answer) pair, as the public
conversion (Ross3D ``scripts/3d/preprocessing/process_scanqa.py``: 26,515 training samples from
25,563 questions), ids ``scanqa/train/<question_id>/<k>``; val/test: one per question with every
answer as a reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ross3d_data.instructions import prompts
from ross3d_data.instructions.common import (
    BoxTable,
    ConvertResult,
    RowError,
    SourceFiles,
    get,
    load_rows,
    lookup_boxes,
    run_rows,
)
from ross3d_data.instructions.schema import Instruction


def convert(rows: list[Any], split: str, boxes: BoxTable | None = None) -> ConvertResult:
    def one(row: Any) -> Iterator[Instruction]:
        qid = get(row, "question_id", str)
        scene_id = get(row, "scene_id", str)
        question = get(row, "question", str).strip()
        answers = row.get("answers", [])
        if split != "test" and (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise RowError("missing 'answers'")
        object_ids = row.get("object_ids", [])
        if not isinstance(object_ids, list) or not all(isinstance(o, int) for o in object_ids):
            raise RowError("bad 'object_ids'")
        per_answer = split == "train"
        targets = (
            [[a] for a in answers] if per_answer else [list(answers) if split != "test" else []]
        )
        for k, refs in enumerate(targets):
            yield Instruction(
                id=f"scanqa/{split}/{qid}" + (f"/{k}" if per_answer else ""),
                scene_id=scene_id,
                task="scanqa",
                split=split,
                prompt=prompts.SCANQA.format(question=question),
                answers=refs,
                object_ids=list(object_ids),
                boxes=lookup_boxes(boxes, scene_id, object_ids) if object_ids else [],
                question_type=None,
                eval={"question_id": qid},
            )

    return run_rows(ConvertResult("scanqa", split), rows, one)


def convert_files(src: SourceFiles, split: str, boxes: BoxTable | None = None) -> ConvertResult:
    return convert(load_rows(src.input, "scanqa"), split, boxes)
