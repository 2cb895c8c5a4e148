"""The benchmark rules every package shares, defined once (no torch, no open3d: stdlib only).

ross3d-data (instruction converters), ross3d-model (training batches, predict) and the scorers
in ross3d-eval all import these: task names, which tasks are grounding / QA, the prediction record a task
is matched on, ScanRefer's unique / multiple split and the box table file (boxes.json).

ScanRefer unique / multiple follows ScanRefer's `lib/dataset.py` (`_get_raw2label`,
`_get_unique_multiple_lookup`): an object's class is its `object_name` (underscores read as
spaces) mapped through ScanNet's `scannetv2-labels.combined.tsv` (raw category, column 1 ->
nyu40 class name, column 7) onto the 18 ScanRefer classes (17 named, everything else
"others"); a query is `unique` iff its object is the only annotated object (distinct object id)
of that class in the scene. Without the label map the class is the name itself.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ross3d_benchmarks.errors import EvalInputError, read_json

TASKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")
QA_TASKS = ("scanqa", "sqa3d")
GROUNDING_TASKS = ("scanrefer", "multi3drefer")
SPLITS = ("train", "val", "test")

# Fields of a prediction record that identify what it answers (the scorers match on these).
PREDICTION_ID_FIELDS = {
    "scanqa": ("question_id",),
    "sqa3d": ("question_id",),
    "scan2cap": ("scene_id", "object_id"),
    "scanrefer": ("scene_id", "object_id", "ann_id"),
    "multi3drefer": ("scene_id", "ann_id"),
}
# Fields holding the prediction itself.
PREDICTION_VALUE_FIELDS = {
    "scanqa": ("answer",),
    "sqa3d": ("answer",),
    "scan2cap": ("caption", "box"),
    "scanrefer": ("box",),
    "multi3drefer": ("boxes",),
}

SCANREFER_EVAL_TYPES = ("unique", "multiple")
# Multi3DRefer query types (M3DRef-CLIP): zero / single target with or without a distractor of
# the same class, multiple targets.
MULTI3DREFER_EVAL_TYPES = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")
OTHERS = "others"
# ScanRefer's detection classes (DC.type2class) besides "others".
SCANREFER_CLASSES = frozenset(
    {
        "cabinet",
        "bed",
        "chair",
        "sofa",
        "table",
        "door",
        "window",
        "bookshelf",
        "picture",
        "counter",
        "desk",
        "curtain",
        "refrigerator",
        "shower curtain",
        "toilet",
        "sink",
        "bathtub",
    }
)

# {scene_id: {object_id: [cx, cy, cz, dx, dy, dz]}} in the axis-aligned frame
BoxTable = dict[str, dict[int, list[float]]]


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def prediction_key(task: str, record: dict) -> tuple[str, ...]:
    """The id a prediction of `task` is matched on (ids as strings: "5" and 5 are equal).
    KeyError names the missing field."""
    return tuple(str(record[name]) for name in PREDICTION_ID_FIELDS[check_task(task)])


def read_label_map(path: Path) -> dict[str, str]:
    """`scannetv2-labels.combined.tsv` -> {raw category: ScanRefer class} (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(path, "file not found")
    out = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines[1:], start=2):
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 8:
            raise EvalInputError(path, "expected >= 8 tab-separated columns", line=lineno)
        out[cols[1]] = cols[7] if cols[7] in SCANREFER_CLASSES else OTHERS
    if not out:
        raise EvalInputError(path, "no label rows (not a scannetv2-labels.combined.tsv)")
    return out


def scanrefer_class(object_name: str, label_map: dict[str, str] | None) -> str:
    """An annotated object's class for the unique / multiple split (module docstring)."""
    name = object_name.replace("_", " ")
    return name if label_map is None else label_map.get(name, OTHERS)


def eval_types(
    objects: Iterable[tuple[str, str, str]], label_map: dict[str, str] | None
) -> dict[tuple[str, str], str]:
    """(scene_id, object_id, object_name) of every annotation -> {(scene_id, object_id):
    "unique" | "multiple"}."""
    objects = [(scene, str(obj), scanrefer_class(name, label_map)) for scene, obj, name in objects]
    members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for scene, obj, cls in objects:
        members[(scene, cls)].add(obj)
    return {
        (scene, obj): "unique" if len(members[(scene, cls)]) == 1 else "multiple"
        for scene, obj, cls in objects
    }


BOX_LAYOUTS = ("ours", "published")


def read_boxes_json(path: Path) -> BoxTable:
    """A box table in either layout, detected from the file:

    * "ours" (boxes.json): `{scene_id: {object_id: [cx, cy, cz, dx, dy, dz]}}`;
    * "published": Ross3D's `scannet_{val,test}_pred_box.json` (Mask3D proposals,
      `scripts/3d/preprocessing/extract_pred_box.py` lines 86-89 and 97-100):
      `{"scannet/<scene_id>": [[cx, cy, cz, dx, dy, dz], ...]}`; the object ids are the list
      positions (the public eval indexes `video_dict['objects']` by them) and the scene id is
      the key after its last "/".

    EvalInputError (a ValueError) naming the file and the entry on anything else (not 6
    finite numbers, a negative size, a non-integer object id, the two layouts mixed)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise EvalInputError(
            path, "expected an object {scene_id: {object_id: box}} or {scene: [box, ...]}"
        )
    kinds = {type(v) for v in data.values()}
    if not kinds <= {dict, list} or len(kinds) > 1:
        raise EvalInputError(
            path, "every scene must map to {object_id: box} (boxes.json) or to a list of boxes "
            "(the published scannet_*_pred_box.json), not a mix or anything else"
        )  # fmt: skip
    out: BoxTable = {}
    for key, table in data.items():
        scene_id = key.rsplit("/", 1)[-1] if isinstance(table, list) else key
        if scene_id in out:
            raise EvalInputError(path, f"scene {scene_id} appears twice ({key!r})")
        entries = enumerate(table) if isinstance(table, list) else table.items()
        out[scene_id] = {}
        for object_id, box in entries:
            why = _box_problem(box)
            if why is None and not str(object_id).lstrip("-").isdigit():
                why = "object id is not an integer"
            if why is not None:
                raise EvalInputError(path, f"scene {key} object {object_id}: {why}")
            out[scene_id][int(object_id)] = [float(v) for v in box]
    return out


def write_boxes_json(
    boxes: BoxTable, path: Path, layout: str = "ours", scene_prefix: str = "scannet/"
) -> None:
    """Write a box table (scenes and object ids sorted) as our boxes.json, or with
    `layout="published"` as Ross3D's pred_box file (`{scene_prefix + scene_id: [box, ...]}`,
    which needs the object ids of each scene to be 0..K-1: they become list positions)."""
    if layout not in BOX_LAYOUTS:
        raise ValueError(f"layout must be one of {BOX_LAYOUTS}, got {layout!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "ours":
        data = {
            s: {str(o): [float(v) for v in b] for o, b in sorted(t.items())}
            for s, t in sorted(boxes.items())
        }
    else:
        data = {}
        for s, t in sorted(boxes.items()):
            if sorted(t) != list(range(len(t))):
                raise ValueError(f"scene {s}: object ids {sorted(t)} are not 0..{len(t) - 1}")
            data[scene_prefix + s] = [[float(v) for v in t[o]] for o in range(len(t))]
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _box_problem(box) -> str | None:
    if not isinstance(box, list | tuple) or len(box) != 6:
        return "box must be a list of 6 numbers [cx, cy, cz, dx, dy, dz]"
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in box):
        return f"box must contain only numbers, got {box!r}"
    if not all(math.isfinite(v) for v in box):
        return f"box has a non-finite value (NaN or inf): {box!r}"
    if any(v < 0 for v in box[3:]):
        return f"box has a negative size: {box!r}"
    return None
