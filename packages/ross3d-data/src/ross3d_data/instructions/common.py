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

MAX_EXAMPLES = 3  # example rows kept per skip reason

# The keys that identify each benchmark's published rows (a row may carry more).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "scanqa": ("question_id", "scene_id", "question"),
    "scanrefer": ("scene_id", "object_id", "object_name", "ann_id", "description"),
    "scan2cap": ("scene_id", "object_id", "object_name", "ann_id", "description"),
    "multi3drefer": ("scene_id", "ann_id", "description", "object_ids", "eval_type"),
}
NAMES = {
    "scanqa": "ScanQA",
    "sqa3d": "SQA3D",
    "scan2cap": "Scan2Cap",
    "scanrefer": "ScanRefer",
    "multi3drefer": "Multi3DRefer",
}


@dataclass(frozen=True)
class SourceFiles:
    """The official files one conversion reads (only some tasks use the optional ones)."""

    input: Path
    questions: Path | None = None  # SQA3D questions file (input = annotations file)
    label_map: Path | None = None  # scannetv2-labels.combined.tsv (ScanRefer/Scan2Cap eval_type)


class RowError(ValueError):
    """A benchmark row that cannot be converted; the message is the skip reason.

    ``scene_id`` is set when the reason is the row's scene (absent from the box table), so
    the scenes a file names but the box table lacks can be listed.
    """

    def __init__(self, reason: str, scene_id: str | None = None) -> None:
        super().__init__(reason)
        self.scene_id = scene_id


@dataclass
class ConvertResult:
    """Converted instructions plus what was skipped and why."""

    task: str
    split: str
    instructions: list[Instruction] = field(default_factory=list)
    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # skip reason -> the first few rows it hit (question ids, scene/object/ann ids, row numbers)
    examples: dict[str, list[str]] = field(default_factory=dict)
    # scene id -> rows naming it whose scene the box table lacks (file order)
    absent_scenes: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, row: Any, index: int) -> None:
        """Count one skipped row under ``reason``, keeping the first few as examples."""
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(row_label(row, index))


def row_label(row: Any, index: int) -> str:
    """A short name of a benchmark row for messages: its question id, else its
    scene/object/ann ids, else its position in the file."""
    if isinstance(row, dict):
        if "question_id" in row:
            return str(row["question_id"])
        parts = [str(row[k]) for k in ("scene_id", "object_id", "ann_id") if k in row]
        if len(parts) > 1:
            return "/".join(parts)
    return f"row {index}"


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
    for index, row in enumerate(rows):
        result.rows += 1
        try:
            made = list(convert_row(row))
        except RowError as e:
            result.skip(str(e), row, index)
            if e.scene_id is not None:
                result.absent_scenes[e.scene_id] += 1
            continue
        for inst in made:
            if inst.id in seen:
                result.skip("duplicate id", row, index)
                continue
            seen.add(inst.id)
            result.instructions.append(inst)
    return result


def lookup_boxes(boxes: BoxTable | None, scene_id: str, object_ids: list[int]) -> list[list[float]]:
    """Boxes of ``object_ids``; [] without a table; RowError for unknown scenes/objects."""
    if boxes is None:
        return []
    if scene_id not in boxes:
        raise RowError("scene not in box table", scene_id=scene_id)
    table = boxes[scene_id]
    missing = [o for o in object_ids if o not in table]
    if missing:
        raise RowError("object_id not in scene")
    return [list(table[o]) for o in object_ids]


def load_json_list(path: Path) -> list[Any]:
    """A JSON file holding a list (ScanQA, ScanRefer, Multi3DRefer); clear error otherwise."""
    data = load_json(path)
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: expected a JSON list of rows, got {type(data).__name__}{guess_hint(data)}"
        )
    return data


def load_rows(path: Path, benchmark: str) -> list[Any]:
    """The rows of a ScanQA/ScanRefer/Scan2Cap/Multi3DRefer file, checked to be that
    benchmark's: ValueError naming the keys expected (and the benchmark the file looks like)
    when no row carries them all, or when the file holds no rows."""
    rows = load_json_list(path)
    if not rows:
        raise ValueError(f"{path}: an empty list, no {NAMES[benchmark]} rows to convert")
    keys = ROW_KEYS[benchmark]
    if not any(_has_keys(row, keys) for row in rows):
        first = next((row for row in rows if isinstance(row, dict)), {})
        found = ", ".join(sorted(first)) or "none"
        raise ValueError(
            f"{path}: not a {NAMES[benchmark]} file: no row has the keys {', '.join(keys)} "
            f"(its first row has: {found}){guess_hint(rows, benchmark)}"
        )
    return rows


def guess_benchmark(data: Any) -> list[str]:
    """The benchmarks whose published layout ``data`` (a loaded JSON file) matches."""
    if isinstance(data, dict):
        return ["sqa3d"] if {"annotations", "questions"} & data.keys() else []
    if not isinstance(data, list):
        return []
    return [b for b, keys in ROW_KEYS.items() if any(_has_keys(row, keys) for row in data)]


def _has_keys(row: Any, keys: tuple[str, ...]) -> bool:
    return isinstance(row, dict) and all(k in row for k in keys)


def guess_hint(data: Any, benchmark: str | None = None) -> str:
    """'; it looks like a ScanRefer file: pass --benchmark scanrefer' (or '')."""
    guesses = [b for b in guess_benchmark(data) if b != benchmark]
    if not guesses:
        return ""
    names = " or ".join(NAMES[b] for b in guesses)
    options = " or ".join(f"--benchmark {b}" for b in guesses)
    article = "an" if names.startswith("SQA") else "a"
    return f"; it looks like {article} {names} file: pass {options}"


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
