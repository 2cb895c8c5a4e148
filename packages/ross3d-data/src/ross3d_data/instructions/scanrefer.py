"""ScanRefer (daveredrum/ScanRefer ``ScanRefer_filtered_{train,val}.json``).

Rows: ``{"scene_id", "object_id": "5", "object_name", "ann_id": "0", "description",
"token": [...]}`` (ids are strings). ``eval_type`` (unique/multiple) is taken from the row when
present (Video-3D-LLM adds it); otherwise it is computed from the file itself, as
M3DRef-CLIP / Video-3D-LLM do: ``unique`` when no other annotated object of the scene has the
same class. The class is the NYU40 id from ScanNet's ``scannetv2-labels.combined.tsv``
(``label_map``; classes outside the valid set count as "other furniture" 39) or, without the
map, the normalised object_name (an approximation).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import prompts
from .common import (
    BoxTable,
    ConvertResult,
    RowError,
    SourceFiles,
    get,
    get_int,
    load_json_list,
    lookup_boxes,
    run_rows,
)
from .schema import Instruction

EVAL_TYPES = ("unique", "multiple")
# NYU40 classes ScanRefer evaluates (wall, floor, ceiling, ... fold into 39 "otherfurniture")
VALID_NYU40 = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39})
LabelMap = dict[str, int]


def read_label_map(path: Path) -> LabelMap:
    """raw_category -> NYU40 id from ``scannetv2-labels.combined.tsv`` (columns 1 and 4)."""
    out: LabelMap = {}
    try:
        with Path(path).open(encoding="utf-8", newline="") as f:
            rows = csv.reader(f, delimiter="\t")
            next(rows)
            for line in rows:
                out[line[1]] = int(line[4])
    except (OSError, StopIteration, IndexError, ValueError) as e:
        raise ValueError(f"{path}: not a scannetv2-labels.combined.tsv ({e})") from e
    if not out:
        raise ValueError(f"{path}: not a scannetv2-labels.combined.tsv (no label rows)")
    return out


def _class(row: dict, label_map: LabelMap | None) -> str:
    name = str(row["object_name"]).replace("_", " ").strip()
    if label_map is None:
        return name.lower()
    nyu40 = label_map.get(name, 39)
    return str(nyu40 if nyu40 in VALID_NYU40 else 39)


def unique_multiple(
    rows: list[Any], label_map: LabelMap | None = None
) -> dict[tuple[str, str], str]:
    """``(scene_id, class) -> 'unique'|'multiple'`` from the distinct annotated objects."""
    objects: dict[tuple[str, str], set] = defaultdict(set)
    for row in rows:
        if isinstance(row, dict) and {"scene_id", "object_id", "object_name"} <= row.keys():
            objects[(str(row["scene_id"]), _class(row, label_map))].add(str(row["object_id"]))
    return {k: "unique" if len(v) == 1 else "multiple" for k, v in objects.items()}


def parse_row(
    row: Any, lookup: dict[tuple[str, str], str], label_map: LabelMap | None = None
) -> dict[str, Any]:
    """Checked fields of one ScanRefer row (shared with the Scan2Cap converter)."""
    scene_id = get(row, "scene_id", str)
    object_id = get_int(row, "object_id")
    ann_id = get_int(row, "ann_id")
    name = get(row, "object_name", str)
    description = get(row, "description", str).strip()
    eval_type = row.get("eval_type") or lookup[(scene_id, _class(row, label_map))]
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
        r = parse_row(row, lookup, label_map)
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
    return convert(load_json_list(src.input), split, boxes, label_map)
