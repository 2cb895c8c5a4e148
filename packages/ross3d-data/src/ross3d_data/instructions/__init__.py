"""Benchmark instructions: schema, prompt templates and converters from the official files.

Tasks: ScanQA, SQA3D, Scan2Cap, ScanRefer, Multi3DRefer (docs/contracts.md section 3).
"""

from ross3d_data.instructions.common import (
    BoxTable,
    ConvertResult,
    boxes_from_scenes,
    read_boxes_json,
    write_boxes_json,
)
from ross3d_data.instructions.registry import (
    CONVERTERS,
    ConvertConfig,
    convert_instructions,
    summary_table,
)
from ross3d_data.instructions.schema import SPLITS, TASKS, Instruction, read_jsonl, write_jsonl

__all__ = [
    "CONVERTERS",
    "SPLITS",
    "TASKS",
    "BoxTable",
    "ConvertConfig",
    "ConvertResult",
    "Instruction",
    "boxes_from_scenes",
    "convert_instructions",
    "read_boxes_json",
    "read_jsonl",
    "summary_table",
    "write_boxes_json",
    "write_jsonl",
]
