"""ScanRefer (daveredrum/ScanRefer ``ScanRefer_filtered_{train,val}.json``).

Rows: ``{"scene_id", "object_id": "5", "object_name", "ann_id": "0", "description",
"token": [...]}`` (ids are strings). ``eval_type`` (unique/multiple) is taken from the row when
present (Video-3D-LLM adds it); otherwise it is computed from the file itself: ``unique`` when
the scene has no other annotated object with the same (normalised) object_name. The official
split uses the NYU40 class instead of the raw name, so add ``eval_type`` to the rows for exact
numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import prompts
from .common import (
    BoxTable,
    ConvertResult,
    RowError,
    get,
    get_int,
    load_json_list,
    lookup_boxes,
    run_rows,
)
from .schema import Instruction

EVAL_TYPES = ("unique", "multiple")


def _name(row: dict) -> str:
    return str(row["object_name"]).replace("_", " ").strip().lower()


def unique_multiple(rows: list[Any]) -> dict[tuple[str, str], str]:
    """``(scene_id, object_name) -> 'unique'|'multiple'`` from distinct annotated objects."""
    objects: dict[tuple[str, str], set] = defaultdict(set)
    for row in rows:
        if isinstance(row, dict) and {"scene_id", "object_id", "object_name"} <= row.keys():
            objects[(str(row["scene_id"]), _name(row))].add(str(row["object_id"]))
    return {k: "unique" if len(v) == 1 else "multiple" for k, v in objects.items()}


def parse_row(row: Any, lookup: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Checked fields of one ScanRefer row (shared with the Scan2Cap converter)."""
    scene_id = get(row, "scene_id", str)
    object_id = get_int(row, "object_id")
    ann_id = get_int(row, "ann_id")
    name = get(row, "object_name", str)
    description = get(row, "description", str).strip()
    eval_type = row.get("eval_type") or lookup[(scene_id, _name(row))]
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


def convert(rows: list[Any], split: str, boxes: BoxTable | None = None) -> ConvertResult:
    lookup = unique_multiple(rows)

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


def convert_files(
    input: Path, split: str, boxes: BoxTable | None = None, questions: Path | None = None
) -> ConvertResult:
    return convert(load_json_list(input), split, boxes)
