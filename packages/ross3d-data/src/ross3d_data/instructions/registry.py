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

MAX_LISTED = 5  # scene ids listed in a warning or an error

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
    sqa3d_text: str = "published"  # sqa3d.SQA3D_TEXT_RULES: the public text, or stripped

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.sqa3d_text not in sqa3d.SQA3D_TEXT_RULES:
            raise ValueError(f"sqa3d_text must be one of {sqa3d.SQA3D_TEXT_RULES}")
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
    """Convert one official benchmark file to instruction JSON lines at ``cfg.out``.

    A file of another benchmark, or one of which no row converts, raises ValueError (one
    line: the skip reasons counted, a few example rows, what to do) and writes nothing.
    What is converted but worth a look is in ``result.warnings``: scenes the file names that
    the box table lacks (their rows are skipped when they need boxes), or no box table at all.
    """
    boxes = load_box_table(cfg)
    src = SourceFiles(Path(cfg.input), cfg.questions, cfg.label_map)
    if cfg.task == "sqa3d":
        result = sqa3d.convert_files(src, cfg.split, boxes, text=cfg.sqa3d_text)
    else:
        result = CONVERTERS[cfg.task](src, cfg.split, boxes)
    if boxes is not None:
        for inst in result.instructions:
            if inst.scene_id not in boxes:  # converted without boxes (no object ids)
                result.absent_scenes[inst.scene_id] += 1
    if not result.instructions:
        raise ValueError(nothing_converted(cfg, result))
    result.warnings += conversion_warnings(cfg, result, boxes)
    write_jsonl(result.instructions, cfg.out)
    return result


def _box_source(cfg: ConvertConfig) -> str:
    return f"--scenes {cfg.scenes}" if cfg.scenes is not None else f"--boxes {cfg.boxes_json}"


def _first(names: Iterable[str], n: int = MAX_LISTED) -> str:
    names = list(names)
    more = f", ... ({len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def nothing_converted(cfg: ConvertConfig, result: ConvertResult) -> str:
    """The one-line error when no row of the file became an instruction."""
    reasons = "; ".join(
        f"{reason}: {n} (e.g. {', '.join(result.examples.get(reason, []))})"
        for reason, n in result.skipped.most_common()
    )
    text = f"{cfg.input}: 0 of {result.rows} {cfg.task} rows converted ({reasons or 'no rows'})"
    if result.absent_scenes:
        n = len(result.absent_scenes)
        text += (
            f"; {n} of its scenes ({_first(result.absent_scenes)}) {'is' if n == 1 else 'are'} "
            f"not in {_box_source(cfg)}: point it at the scene root that holds them"
        )
    elif result.skipped.get("missing 'answers'") == result.rows and cfg.split != "test":
        text += "; test files have no answers: pass --split test"
    elif result.skipped.get("object_id not in scene") == result.rows:
        text += (
            f"; the objects of {_box_source(cfg)} are not the ones annotated: use the scans "
            "(or their boxes.json) the benchmark was annotated on"
        )
    return text


def conversion_warnings(
    cfg: ConvertConfig, result: ConvertResult, boxes: BoxTable | None
) -> list[str]:
    """Warnings about a conversion that wrote instructions (see ``convert_instructions``)."""
    out = []
    if result.absent_scenes:
        skipped = result.skipped.get("scene not in box table", 0)
        n = len(result.absent_scenes)
        out.append(
            f"{n} scene{'s' * (n != 1)} named in {cfg.input} {'is' if n == 1 else 'are'} not "
            f"in {_box_source(cfg)} ({skipped} rows skipped for it): "
            f"{_first(result.absent_scenes)}"
        )
    if boxes is None and cfg.task != "sqa3d":
        out.append(
            "no --scenes or --boxes: instructions keep object ids but have no boxes "
            "(grounding and Scan2Cap need them); pass --scenes SCENE_ROOT or --boxes boxes.json"
        )
    return out


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
