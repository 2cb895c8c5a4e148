"""Checkpoint folders: OUTPUT_DIR/checkpoints/step-00000010/ holds the accelerate/DeepSpeed state
(model, optimiser, scheduler, RNG), `trainer_state.json` and, last, a `COMPLETE` marker, so a run
killed while saving never resumes from a half-written checkpoint."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINTS = "checkpoints"
RUN_CONFIG_FILE = "run_config.json"  # OUTPUT_DIR/run_config.json: what `export` rebuilds from
STATE_FILE = "trainer_state.json"
COMPLETE = "COMPLETE"
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step-{step:08d}"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and (path / COMPLETE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def write_state(path: Path, state: dict) -> None:
    (path / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def read_state(path: Path) -> dict:
    file = path / STATE_FILE
    try:
        state = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{file}: cannot read trainer state: {err}") from err
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"{file}: trainer state needs an integer 'step'")
    return state


def mark_complete(path: Path) -> None:
    (path / COMPLETE).write_text("ok\n")


def prune(output_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints (keep=0: keep all) and any
    incomplete ones older than the newest complete one. Returns what was removed."""
    found = list_checkpoints(output_dir)
    removed = [path for _, path in found[:-keep]] if keep and len(found) > keep else []
    root = Path(output_dir) / CHECKPOINTS
    newest = found[-1][0] if found else -1
    for path in root.glob("step-*") if root.is_dir() else []:
        match = _NAME.match(path.name)
        if match and not (path / COMPLETE).is_file() and int(match.group(1)) < newest:
            removed.append(path)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
