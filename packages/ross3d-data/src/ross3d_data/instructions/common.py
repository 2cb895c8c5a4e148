"""Shared pieces of the converters: row checking, skip counting, box tables."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Box tables and boxes.json have one definition (ross3d_benchmarks.rules); re-exported here.
from ross3d_benchmarks import BoxTable as BoxTable
from ross3d_benchmarks import read_boxes_json as read_boxes_json
from ross3d_benchmarks import write_boxes_json as write_boxes_json

from ross3d_data.instructions.schema import Instruction


@dataclass(frozen=True)
class SourceFiles:
    """The official files one conversion reads (only some tasks use the optional ones)."""

    input: Path
    questions: Path | None = None  # SQA3D questions file (input = annotations file)
    label_map: Path | None = None  # scannetv2-labels.combined.tsv (ScanRefer/Scan2Cap eval_type)


class RowError(ValueError):
    """A benchmark row that cannot be converted; the message is the skip reason."""


@dataclass
class ConvertResult:
    """Converted instructions plus what was skipped and why."""

    task: str
    split: str
    instructions: list[Instruction] = field(default_factory=list)
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def get(row: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``row[key]`` checked against ``kind``; RowError('missing/bad <key>') otherwise."""
    if not isinstance(row, dict) or key not in row:
        raise RowError(f"missing '{key}'")
    value = row[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RowError(f"bad '{key}' (expected {getattr(kind, '__name__', kind)})")
    if isinstance(value, str) and not value.strip():
        raise RowError(f"empty '{key}'")
    return value


def get_int(row: Any, key: str) -> int:
    """An integer id stored as int or decimal string (ScanRefer stores ids as strings)."""
    value = get(row, key, (int, str))
    try:
        return int(value)
    except ValueError as e:
        raise RowError(f"bad '{key}' (not an integer: {value!r})") from e


def run_rows(
    result: ConvertResult,
    rows: Iterable[Any],
    convert_row: Callable[[Any], Iterator[Instruction]],
) -> ConvertResult:
    """Apply ``convert_row`` to every row, skipping and counting RowErrors and duplicate ids."""
    seen: set[str] = set()
    for row in rows:
        result.rows += 1
        try:
            made = list(convert_row(row))
        except RowError as e:
            result.skipped[str(e)] += 1
            continue
        for inst in made:
            if inst.id in seen:
                result.skipped["duplicate id"] += 1
                continue
            seen.add(inst.id)
            result.instructions.append(inst)
    return result


def lookup_boxes(boxes: BoxTable | None, scene_id: str, object_ids: list[int]) -> list[list[float]]:
    """Boxes of ``object_ids``; [] without a table; RowError for unknown scenes/objects."""
    if boxes is None:
        return []
    if scene_id not in boxes:
        raise RowError("scene not in box table")
    table = boxes[scene_id]
    missing = [o for o in object_ids if o not in table]
    if missing:
        raise RowError("object_id not in scene")
    return [list(table[o]) for o in object_ids]


def load_json_list(path: Path) -> list[Any]:
    """A JSON file holding a list (ScanQA, ScanRefer, Multi3DRefer); clear error otherwise."""
    data = load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    return data


def load_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e


def boxes_from_scenes(scene_dirs: Iterable[Path]) -> BoxTable:
    """Box table from the scenes' objects (``Scene.objects``, aligned frame)."""
    from ross3d_data.datasets import load_scene

    out: BoxTable = {}
    for scene_dir in scene_dirs:
        scene = load_scene(Path(scene_dir))
        out[scene.scene_id] = {int(o.object_id): [float(v) for v in o.box_6] for o in scene.objects}
    return out
