"""Instruction schema (docs/contracts.md section 3) and JSON-lines I/O."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Task and split names have one definition (ross3d_benchmarks.rules); re-exported here.
from ross3d_benchmarks import SPLITS as SPLITS
from ross3d_benchmarks import TASKS as TASKS


@dataclass(frozen=True)
class Instruction:
    """One benchmark sample in the shared schema.

    ``prompt`` is the user text with the task template applied (no spatial prompt, no image
    token: the model adds both). ``answers`` are LM targets (train) or references (val/test);
    ``[]`` for grounding. ``object_ids``/``boxes`` are the target objects (grounding) or the
    query object (scan2cap); boxes are ``[cx, cy, cz, dx, dy, dz]`` in the aligned frame and
    are ``[]`` when converted without a box table. ``eval`` holds what scoring needs.
    """

    id: str
    scene_id: str
    task: str
    split: str
    prompt: str
    answers: list[str] = field(default_factory=list)
    object_ids: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    question_type: str | None = None
    eval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not self.scene_id:
            raise ValueError(f"instruction needs a non-empty id and scene_id, got {self!r}")
        if self.task not in TASKS:
            raise ValueError(f"instruction {self.id}: task {self.task!r} not in {TASKS}")
        if self.split not in SPLITS:
            raise ValueError(f"instruction {self.id}: split {self.split!r} not in {SPLITS}")
        if not all(isinstance(a, str) for a in self.answers):
            raise ValueError(f"instruction {self.id}: answers must be strings")
        if not all(isinstance(o, int) and not isinstance(o, bool) for o in self.object_ids):
            raise ValueError(f"instruction {self.id}: object_ids must be ints")
        for box in self.boxes:
            if len(box) != 6 or not all(math.isfinite(float(v)) for v in box):
                raise ValueError(f"instruction {self.id}: box {box} is not 6 finite numbers")
        if self.boxes and len(self.boxes) != len(self.object_ids):
            raise ValueError(
                f"instruction {self.id}: {len(self.boxes)} boxes for "
                f"{len(self.object_ids)} object_ids"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instruction:
        return cls(**data)


def write_jsonl(instructions: Iterable[Instruction], path: Path) -> int:
    """Write instructions as JSON lines (atomically); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for inst in instructions:
            f.write(json.dumps(inst.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_jsonl(path: Path) -> list[Instruction]:
    """Read instructions; a bad line raises ValueError naming the file and line number."""
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Instruction.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{lineno}: not a valid instruction: {e}") from e
    return out
