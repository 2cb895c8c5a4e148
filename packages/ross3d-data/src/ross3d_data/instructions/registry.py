"""Task name -> converter, and the one library call behind ``convert-instructions``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from ross3d_data.instructions import multi3drefer, scan2cap, scanqa, scanrefer, sqa3d
from ross3d_data.instructions.common import (
    BoxTable,
    ConvertResult,
    SourceFiles,
    boxes_from_scenes,
    read_boxes_json,
    write_boxes_json,
)
from ross3d_data.instructions.schema import SPLITS, TASKS, write_jsonl

Converter = Callable[[SourceFiles, str, BoxTable | None], ConvertResult]

CONVERTERS: dict[str, Converter] = {
    "scanqa": scanqa.convert_files,
    "sqa3d": sqa3d.convert_files,
    "scan2cap": scan2cap.convert_files,
    "scanrefer": scanrefer.convert_files,
    "multi3drefer": multi3drefer.convert_files,
}


@dataclass(frozen=True)
class ConvertConfig:
    """What ``convert-instructions`` converts.

    Boxes come from ``boxes_json`` (a boxes.json) or from the scenes found under ``scenes``;
    with neither, instructions keep object ids but no boxes. ``boxes_out`` writes the table
    used (only meaningful with ``scenes``). ``label_map`` (ScanNet's
    scannetv2-labels.combined.tsv) makes ScanRefer/Scan2Cap unique/multiple exact.
    """

    task: str
    input: Path
    split: str
    out: Path
    questions: Path | None = None
    scenes: Path | None = None
    boxes_json: Path | None = None
    boxes_out: Path | None = None
    label_map: Path | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.task == "sqa3d" and self.questions is None:
            raise ValueError(
                "sqa3d needs questions= (v1_balanced_questions_<split>_scannetv2.json)"
            )
        if self.scenes is not None and self.boxes_json is not None:
            raise ValueError("give scenes or boxes_json, not both")
        if self.boxes_out is not None and self.scenes is None:
            raise ValueError("boxes_out needs scenes (it writes the table read from them)")


def load_box_table(cfg: ConvertConfig) -> BoxTable | None:
    if cfg.boxes_json is not None:
        return read_boxes_json(cfg.boxes_json)
    if cfg.scenes is None:
        return None
    from ross3d_data.datasets import find_scenes

    boxes = boxes_from_scenes(find_scenes(cfg.scenes))
    if cfg.boxes_out is not None:
        write_boxes_json(boxes, cfg.boxes_out)
    return boxes


def convert_instructions(cfg: ConvertConfig) -> ConvertResult:
    """Convert one official benchmark file to instruction JSON lines at ``cfg.out``."""
    boxes = load_box_table(cfg)
    src = SourceFiles(Path(cfg.input), cfg.questions, cfg.label_map)
    result = CONVERTERS[cfg.task](src, cfg.split, boxes)
    write_jsonl(result.instructions, cfg.out)
    return result


def summary_table(results: Iterable[ConvertResult]) -> Table:
    """Rich table: rows read, instructions written and skip reasons per task/split."""
    table = Table(title="instruction conversion")
    for col in ("task", "split", "rows", "instructions", "skipped", "reasons"):
        table.add_column(col)
    for r in results:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(r.skipped.items()))
        table.add_row(
            r.task,
            r.split,
            str(r.rows),
            str(len(r.instructions)),
            str(sum(r.skipped.values())),
            reasons or "-",
        )
    return table
