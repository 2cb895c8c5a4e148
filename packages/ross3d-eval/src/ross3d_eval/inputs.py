"""Reading and validating prediction / annotation files.

Every record carries its origin (`Loc`: file plus JSONL line or JSON list item) so that any later
check can raise an `EvalInputError` that points at the offending line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ross3d_benchmarks import read_boxes_json

from ross3d_eval.errors import EvalInputError, read_json


@dataclass(frozen=True)
class Loc:
    """Where a record came from: a JSONL line (1-based) or a JSON list item (0-based)."""

    path: Path
    line: int | None = None
    item: int | None = None

    def error(self, why: str) -> EvalInputError:
        return EvalInputError(self.path, why, line=self.line, item=self.item)


@dataclass(frozen=True)
class Record:
    loc: Loc
    data: dict[str, Any]


def read_jsonl(path: Path) -> list[Record]:
    """One JSON object per non-blank line; a malformed line raises with its line number."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(path, "file not found")
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                continue
            loc = Loc(path, line=lineno)
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise loc.error(f"malformed JSON ({e.msg})") from None
            if not isinstance(data, dict):
                raise loc.error(f"expected a JSON object, got {type(data).__name__}")
            records.append(Record(loc, data))
    return records


def read_json_list(path: Path, key: str | None = None) -> list[Record]:
    """A JSON list of objects, or the list under `key` of a top-level object (SQA3D files)."""
    data = read_json(path)
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise EvalInputError(path, f'expected an object with a "{key}" list')
        data = data[key]
    if not isinstance(data, list):
        raise EvalInputError(path, f"expected a JSON list, got {type(data).__name__}")
    records = []
    for i, item in enumerate(data):
        loc = Loc(Path(path), item=i)
        if not isinstance(item, dict):
            raise loc.error(f"expected a JSON object, got {type(item).__name__}")
        records.append(Record(loc, item))
    return records


def get_field(rec: Record, name: str, kinds: type | tuple[type, ...]) -> Any:
    """`rec.data[name]`, which must exist and be an instance of `kinds` (bool is never an int)."""
    if name not in rec.data:
        raise rec.loc.error(f'missing field "{name}"')
    value = rec.data[name]
    kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool) and bool not in kinds_t:
        raise rec.loc.error(f'field "{name}" must be {_kind_names(kinds_t)}, got a boolean')
    if not isinstance(value, kinds_t):
        raise rec.loc.error(
            f'field "{name}" must be {_kind_names(kinds_t)}, got {type(value).__name__}'
        )
    return value


def get_id(rec: Record, name: str) -> str:
    """An id given as a string or an integer, normalised to a string ("5" and 5 are equal)."""
    value = get_field(rec, name, (str, int))
    return str(value)


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_box(value: Any, loc: Loc, what: str = "box") -> np.ndarray:
    """[cx, cy, cz, dx, dy, dz] -> float64 (6,); non-finite values or negative sizes raise."""
    if not isinstance(value, list | tuple) or len(value) != 6:
        raise loc.error(f"{what} must be a list of 6 numbers [cx, cy, cz, dx, dy, dz]")
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
        raise loc.error(f"{what} must contain only numbers, got {value!r}")
    if any(not math.isfinite(v) for v in value):
        raise loc.error(f"{what} has a non-finite value (NaN or inf): {value!r}")
    if any(v < 0 for v in value[3:]):
        raise loc.error(f"{what} has a negative size: {value!r}")
    return np.asarray(value, dtype=np.float64)


def index_predictions(
    records: Iterable[Record],
    key_of: Callable[[Record], Hashable],
    known: set[Hashable] | dict,
    describe: Callable[[Hashable], str] = str,
) -> dict[Hashable, Record]:
    """Predictions by key; a duplicate key or a key not in `known` raises at its line."""
    out: dict[Hashable, Record] = {}
    for rec in records:
        key = key_of(rec)
        if key not in known:
            raise rec.loc.error(
                f"prediction for unknown id {describe(key)} (not in the annotations)"
            )
        if key in out:
            first = out[key].loc.line
            raise rec.loc.error(f"duplicate prediction for {describe(key)} (first at line {first})")
        out[key] = rec
    return out


def index_annotations(
    records: Iterable[Record], key_of: Callable[[Record], Hashable], describe=str
) -> dict[Hashable, Record]:
    """Annotation records by key; a duplicate key raises."""
    out: dict[Hashable, Record] = {}
    for rec in records:
        key = key_of(rec)
        if key in out:
            raise rec.loc.error(f"duplicate annotation for {describe(key)}")
        out[key] = rec
    return out


def load_boxes(path: Path) -> dict[tuple[str, str], np.ndarray]:
    """A boxes.json (read by `benchmarks.read_boxes_json`, the one reader) as
    {(scene_id, object_id): float64 (6,)}."""
    table = read_boxes_json(path)
    return {
        (scene_id, str(object_id)): np.asarray(box, dtype=np.float64)
        for scene_id, objects in table.items()
        for object_id, box in objects.items()
    }


def gt_box(
    boxes: dict[tuple[str, str], np.ndarray], boxes_path: Path, scene_id: str, object_id: str
) -> np.ndarray:
    try:
        return boxes[(scene_id, object_id)]
    except KeyError:
        raise EvalInputError(
            boxes_path,
            f"no box for scene {scene_id} object {object_id} (needed by the annotations)",
        ) from None
