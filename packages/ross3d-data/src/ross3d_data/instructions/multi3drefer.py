"""Multi3DRefer (3dlg-hcvc/M3DRef-CLIP ``multi3drefer_{train,val}.json``).

Rows: ``{"scene_id", "ann_id", "object_name", "description", "object_ids": [int],
"eval_type": "zt_w_d"|"zt_wo_d"|"st_w_d"|"st_wo_d"|"mt", ...}``. Zero-target queries have
``object_ids == []``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ross3d_benchmarks import MULTI3DREFER_EVAL_TYPES as EVAL_TYPES

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


def convert(rows: list[Any], split: str, boxes: BoxTable | None = None) -> ConvertResult:
    def one(row: Any) -> Iterator[Instruction]:
        scene_id = get(row, "scene_id", str)
        ann_id = get_int(row, "ann_id")
        description = get(row, "description", str).strip()
        object_ids = get(row, "object_ids", list)
        if not all(isinstance(o, int) and not isinstance(o, bool) for o in object_ids):
            raise RowError("bad 'object_ids'")
        eval_type = get(row, "eval_type", str)
        if eval_type not in EVAL_TYPES:
            raise RowError("bad 'eval_type'")
        if (eval_type.startswith("zt")) != (len(object_ids) == 0):
            raise RowError("eval_type disagrees with object_ids")
        yield Instruction(
            id=f"multi3drefer/{split}/{scene_id}/{ann_id}",
            scene_id=scene_id,
            task="multi3drefer",
            split=split,
            prompt=prompts.MULTI3DREFER.format(
                description=prompts.capitalize_description(description)
            ),
            answers=[],
            object_ids=list(object_ids),
            boxes=lookup_boxes(boxes, scene_id, object_ids),
            question_type=eval_type,
            eval={"ann_id": ann_id, "eval_type": eval_type},
        )

    return run_rows(ConvertResult("multi3drefer", split), rows, one)


def convert_files(src: SourceFiles, split: str, boxes: BoxTable | None = None) -> ConvertResult:
    return convert(load_rows(src.input, "multi3drefer"), split, boxes)
