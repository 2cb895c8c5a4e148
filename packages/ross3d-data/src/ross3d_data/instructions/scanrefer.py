"""ScanRefer (daveredrum/ScanRefer ``ScanRefer_filtered_{train,val}.json``).

Rows: ``{"scene_id", "object_id": "5", "object_name", "ann_id": "0", "description",
"token": [...]}`` (ids are strings). ``eval_type`` (unique/multiple) is taken from the row when
present (Video-3D-LLM adds it); otherwise it is computed from the file itself with the one
definition the scorer uses (``ross3d_benchmarks.rules.eval_types``: the 18 ScanRefer classes
through ScanNet's ``scannetv2-labels.combined.tsv`` when given as ``label_map``, else the
object name).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ross3d_benchmarks import SCANREFER_EVAL_TYPES as EVAL_TYPES
from ross3d_benchmarks import eval_types
from ross3d_benchmarks import read_label_map as read_label_map

from ross3d_data.instructions import prompts
from ross3d_data.instructions.common import (
    BoxTable,
    ConvertResult,
    RowError,
    SourceFiles,
    get,
    get_int,
    load_rows,
    lookup_boxes,
    run_rows,
)
from ross3d_data.instructions.schema import Instruction

LabelMap = dict[str, str]  # raw category -> ScanRefer class


def unique_multiple(
    rows: list[Any], label_map: LabelMap | None = None
) -> dict[tuple[str, str], str]:
    """``(scene_id, object_id) -> 'unique'|'multiple'`` over the file's annotated objects."""
    objects = []
    for row in rows:
        if isinstance(row, dict) and {"scene_id", "object_id", "object_name"} <= row.keys():
            objects.append((str(row["scene_id"]), _id(row["object_id"]), str(row["object_name"])))
    return eval_types(objects, label_map)


def _id(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def parse_row(row: Any, lookup: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Checked fields of one ScanRefer row (shared with the Scan2Cap converter)."""
    scene_id = get(row, "scene_id", str)
    object_id = get_int(row, "object_id")
    ann_id = get_int(row, "ann_id")
    name = get(row, "object_name", str)
    description = get(row, "description", str).strip()
    eval_type = row.get("eval_type") or lookup[(scene_id, str(object_id))]
    if eval_type not in EVAL_TYPES:
        raise RowError("bad 'eval_type'")
    return {
        "scene_id": scene_id,
        "object_id": object_id,
        "ann_id": ann_id,
        "object_name": name,
        "description": description,
        "eval_type": eval_type,
    }


def convert(
    rows: list[Any], split: str, boxes: BoxTable | None = None, label_map: LabelMap | None = None
) -> ConvertResult:
    lookup = unique_multiple(rows, label_map)

    def one(row: Any) -> Iterator[Instruction]:
        r = parse_row(row, lookup)
        yield Instruction(
            id=f"scanrefer/{split}/{r['scene_id']}/{r['object_id']}/{r['ann_id']}",
            scene_id=r["scene_id"],
            task="scanrefer",
            split=split,
            prompt=prompts.SCANREFER.format(
                description=prompts.capitalize_description(r["description"])
            ),
            answers=[],
            object_ids=[r["object_id"]],
            boxes=lookup_boxes(boxes, r["scene_id"], [r["object_id"]]),
            question_type=r["eval_type"],
            eval={k: r[k] for k in ("ann_id", "object_id", "object_name", "eval_type")},
        )

    return run_rows(ConvertResult("scanrefer", split), rows, one)


def convert_files(src: SourceFiles, split: str, boxes: BoxTable | None = None) -> ConvertResult:
    label_map = read_label_map(src.label_map) if src.label_map is not None else None
    return convert(load_rows(src.input, "scanrefer"), split, boxes, label_map)
