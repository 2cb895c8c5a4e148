"""Scan2Cap (daveredrum/Scan2Cap; captions of ScanRefer objects, ``ScanRefer_filtered_*.json``).

Train: one instruction per description (target = the capitalised description).
Val/test: one instruction per (scene, object) with all its descriptions as references, as the
Scan2Cap evaluation scores each object once. The query box is the object's GT box; at
evaluation a detector proposal may replace it (the score is gated on IoU with the GT box).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ross3d_data.instructions import prompts
from ross3d_data.instructions.common import (
    BoxTable,
    ConvertResult,
    SourceFiles,
    load_rows,
    lookup_boxes,
    run_rows,
)
from ross3d_data.instructions.scanrefer import LabelMap, parse_row, read_label_map, unique_multiple
from ross3d_data.instructions.schema import Instruction


def convert(
    rows: list[Any], split: str, boxes: BoxTable | None = None, label_map: LabelMap | None = None
) -> ConvertResult:
    lookup = unique_multiple(rows, label_map)
    refs: dict[tuple[str, int], list[str]] = {}
    if split != "train":
        for row in rows:
            try:
                r = parse_row(row, lookup)
            except (ValueError, KeyError):
                continue  # counted when the row itself is converted below
            refs.setdefault((r["scene_id"], r["object_id"]), []).append(r["description"])
    done: set[tuple[str, int]] = set()

    def one(row: Any) -> Iterator[Instruction]:
        r = parse_row(row, lookup)
        key = (r["scene_id"], r["object_id"])
        if split == "train":
            suffix, answers = f"/{r['ann_id']}", [prompts.capitalize_description(r["description"])]
        elif key in done:
            return  # further descriptions of an object already emitted (they are its references)
        else:
            suffix, answers = "", refs[key]
        done.add(key)
        yield Instruction(
            id=f"scan2cap/{split}/{r['scene_id']}/{r['object_id']}{suffix}",
            scene_id=r["scene_id"],
            task="scan2cap",
            split=split,
            prompt=prompts.SCAN2CAP,
            answers=answers,
            object_ids=[r["object_id"]],
            boxes=lookup_boxes(boxes, r["scene_id"], [r["object_id"]]),
            question_type=None,
            eval={
                "object_id": r["object_id"],
                "object_name": r["object_name"],
                "ann_id": r["ann_id"],
            },
        )

    return run_rows(ConvertResult("scan2cap", split), rows, one)


def convert_files(src: SourceFiles, split: str, boxes: BoxTable | None = None) -> ConvertResult:
    label_map = read_label_map(src.label_map) if src.label_map is not None else None
    return convert(load_rows(src.input, "scan2cap"), split, boxes, label_map)
