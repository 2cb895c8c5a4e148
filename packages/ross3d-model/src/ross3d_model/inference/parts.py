"""Prediction files of `predict`: resumable JSON lines, per-rank part files, the merge, and the
sidecar recording how they were made.

One process appends to `--out` directly. Under torchrun each rank appends to its own part
`OUT.part-R-of-W.jsonl`; rank 0 then merges `--out` and every part into `--out`, in the fixed
item order, and deletes the parts. A killed run resumes: ids already in `--out` or in any part
are skipped. `OUT.meta.json` (`ross3d_eval.result.prediction_meta_path`) records the protocol;
a resumed run must match it, so one file never mixes protocols.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ross3d_benchmarks import prediction_key


def part_path(out: Path, rank: int, world_size: int) -> Path:
    return out.with_name(f"{out.name}.part-{rank}-of-{world_size}.jsonl")


def part_paths(out: Path) -> list[Path]:
    """Every part file of `out` left by any run (any world size), sorted."""
    return sorted(out.parent.glob(f"{out.name}.part-*-of-*.jsonl"))


def read_records(path: Path, task: str) -> list[dict]:
    """Prediction records of `path` ([] when absent); a clear error naming the line on a corrupt
    one (a torn last line of a killed run is dropped from the file and rewritten later)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            prediction_key(task, record)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            if number == len(lines) and not line.endswith("\n"):
                path.write_text("".join(lines[:-1]))  # torn by a kill mid-write
                break
            raise ValueError(f"{path}:{number}: not a {task} prediction ({err})") from err
        records.append(record)
    return records


def existing_keys(path: Path, task: str) -> set[tuple]:
    """Keys already predicted in `path` (see `read_records`)."""
    return {prediction_key(task, r) for r in read_records(path, task)}


def done_keys(out: Path, task: str) -> set[tuple]:
    """Keys predicted in `out` or in any of its part files."""
    keys = existing_keys(out, task)
    for part in part_paths(out):
        keys |= existing_keys(part, task)
    return keys


def append_records(path: Path, records: list[dict]) -> None:
    with path.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
        f.flush()


def merge_parts(out: Path, task: str, order: list[tuple]) -> int:
    """Rewrite `out` as its records plus every part's, keys in `order` first (then any other
    key in file order), each key once; delete the parts. Returns the record count."""
    by_key: dict[tuple, dict] = {}
    for path in [out, *part_paths(out)]:
        for record in read_records(path, task):
            by_key.setdefault(prediction_key(task, record), record)
    rank = {key: i for i, key in enumerate(order)}
    keys = sorted(by_key, key=lambda k: rank.get(k, len(rank)))  # stable: others keep file order
    tmp = out.with_name(out.name + ".merging")
    tmp.write_text("".join(json.dumps(by_key[k]) + "\n" for k in keys))
    os.replace(tmp, out)
    for part in part_paths(out):
        part.unlink()
    return len(keys)


@dataclass(frozen=True)
class PredictionMeta:
    """How a prediction file was made (the sidecar); `same_recipe` fields must match to resume."""

    protocol: str
    spatial_prompt: bool
    max_new_tokens: int
    proposals: str | None
    split: str
    dtype: str
    checkpoint: str

    def to_dict(self) -> dict:
        return asdict(self)

    def same_recipe(self, other: dict) -> list[str]:
        """Fields of `other` (a sidecar's dict) that differ from this run's (checkpoint aside:
        a moved folder is the same model)."""
        mine = self.to_dict()
        return [k for k in mine if k != "checkpoint" and other.get(k) != mine[k]]


def check_or_write_meta(meta_path: Path, meta: PredictionMeta, has_records: bool) -> None:
    """Write the sidecar; refuse to resume a file made with another recipe."""
    if has_records and meta_path.is_file():
        old = json.loads(meta_path.read_text())
        differ = meta.same_recipe(old)
        if differ:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {meta.to_dict()[k]!r}" for k in differ)
            raise ValueError(
                f"{meta_path}: the predictions next to it were made differently ({detail}); "
                "use another --out or delete them"
            )
    meta_path.write_text(json.dumps(meta.to_dict(), indent=1) + "\n")
