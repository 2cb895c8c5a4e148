"""`ross3d-model predict`: benchmark predictions in exactly the JSON-lines formats that
`ross3d-eval score` reads (docs/contracts.md section 4).

Examples come from build-shards output (the split's instructions of each benchmark's task).
Grounding candidates are the scene's GT boxes stored in the shards (no detector ships here);
pass `boxes` = a `{scene_id: {object_id: [cx, cy, cz, dx, dy, dz]}}` JSON file to use eval-time
proposals instead (e.g. from Mask3D, as the paper does). Output is appended batch by batch and
ids already in the output file are skipped, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

BENCHMARKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")


@dataclass
class PredictConfig:
    checkpoint: Path  # a training OUTPUT_DIR (uses OUTPUT_DIR/model) or an exported model folder
    shards: Path
    benchmarks: list[str]
    out: Path  # PRED.jsonl; with several benchmarks "{benchmark}" in the name is replaced
    split: str = "val"
    batch_size: int = 4
    boxes: Path | None = None  # eval-time proposals instead of the GT boxes
    max_new_tokens: int | None = None
    limit: int | None = None  # at most this many examples per benchmark (smoke runs)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.benchmarks) - set(BENCHMARKS))
        if unknown or not self.benchmarks:
            raise ValueError(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"split must be train/val/test, got {self.split!r}")
        if self.boxes is not None and not Path(self.boxes).is_file():
            raise ValueError(f"{self.boxes}: proposals file not found")
        if len(self.benchmarks) > 1 and "{benchmark}" not in str(self.out):
            raise ValueError("with several benchmarks, --out must contain '{benchmark}'")


@dataclass
class PredictSummary:
    benchmark: str
    path: Path
    written: int = 0
    skipped_existing: int = 0
    duplicates: int = 0  # instructions mapping to an id already predicted in this run
    missing_proposals: int = 0  # scenes absent from the proposals file (no candidates)
    notes: list[str] = field(default_factory=list)


def output_path(cfg: PredictConfig, benchmark: str) -> Path:
    return Path(str(cfg.out).replace("{benchmark}", benchmark))


def record_key(task: str, record: dict) -> tuple:
    """The id `ross3d-eval score` matches a prediction on."""
    if task in ("scanqa", "sqa3d"):
        return (str(record["question_id"]),)
    if task == "scanrefer":
        return (record["scene_id"], str(record["object_id"]), str(record["ann_id"]))
    if task == "multi3drefer":
        return (record["scene_id"], str(record["ann_id"]))
    return (record["scene_id"], str(record["object_id"]))


def instruction_key(instruction: dict) -> tuple:
    """`record_key` of the prediction this instruction produces."""
    ev, task = instruction["eval"], instruction["task"]
    try:
        if task in ("scanqa", "sqa3d"):
            return (str(ev["question_id"]),)
        fields = {"scene_id": instruction["scene_id"], **ev}
        return record_key(task, fields)
    except KeyError as err:
        raise ValueError(f"instruction {instruction['id']}: eval lacks {err} for scoring") from err


def existing_keys(path: Path, task: str) -> set[tuple]:
    """Keys already predicted in `path`; a clear error on a corrupt line (a torn last line of a
    killed run is dropped and rewritten)."""
    if not path.exists():
        return set()
    lines = path.read_text().splitlines(keepends=True)
    keys, good = set(), []
    for number, line in enumerate(lines, start=1):
        try:
            keys.add(record_key(task, json.loads(line)))
            good.append(line)
        except (json.JSONDecodeError, KeyError) as err:
            if number == len(lines) and not line.endswith("\n"):
                path.write_text("".join(good))  # torn by a kill mid-write
                break
            raise ValueError(f"{path}:{number}: not a {task} prediction ({err})") from err
    return keys


def load_checkpoint(path: Path):
    """(model in eval mode, tokenizer) from an exported folder or a training OUTPUT_DIR."""
    from ross3d_model.modeling import Ross3DForCausalLM
    from ross3d_model.tokenizer import build_tokenizer, special_token_ids
    from ross3d_model.training.task import TOKENIZER_DIR
    from ross3d_model.training.trainer import EXPORT_DIR

    path = Path(path)
    folder = path / EXPORT_DIR if (path / EXPORT_DIR / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise ValueError(f"{path}: no exported model (config.json) here or in {EXPORT_DIR}/")
    if not (folder / TOKENIZER_DIR).is_dir():
        raise ValueError(f"{folder}: no {TOKENIZER_DIR}/ folder next to the weights")
    tokenizer = build_tokenizer(folder / TOKENIZER_DIR)
    model = Ross3DForCausalLM.from_pretrained(folder)
    model.set_special_ids(special_token_ids(tokenizer))
    return model.eval(), tokenizer


def _read_proposals(path: Path | None) -> dict[str, tuple[list[int], torch.Tensor]] | None:
    if path is None:
        return None
    try:
        table = json.loads(Path(path).read_text())
        return {
            scene: (
                [int(k) for k in objs],
                torch.tensor([list(map(float, b)) for b in objs.values()]).reshape(-1, 6),
            )
            for scene, objs in table.items()
        }
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: not a {{scene_id: {{object_id: [6]}}}} boxes file: {err}"
        ) from err


def eval_examples(cfg: PredictConfig, task: str) -> Iterator[tuple[dict, dict]]:
    """(decoded clip, instruction) pairs of `task` in the split, in (clip, id) order."""
    from ross3d_data.reader import ShardReader

    reader = ShardReader(cfg.shards)
    for key, instruction in reader.examples(cfg.split, [task]):
        yield reader.clip(key), instruction


def predict_benchmark(model, tokenizer, cfg: PredictConfig, task: str) -> PredictSummary:
    """Predict every instruction of `task` not yet in the output file; append as we go."""
    path = output_path(cfg, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(task, path)
    done = existing_keys(path, task)
    proposals = _read_proposals(cfg.boxes)
    pending: list[dict] = []
    for sample, instruction in eval_examples(cfg, task):
        if cfg.limit is not None and summary.written + len(pending) >= cfg.limit:
            break
        key = instruction_key(instruction)
        if key in done:
            summary.skipped_existing += 1
            continue
        done.add(key)
        pending.append(_example(sample, instruction, proposals, summary))
        if len(pending) == cfg.batch_size:
            summary.written += _flush(model, tokenizer, cfg, pending, path)
            pending = []
    if pending:
        summary.written += _flush(model, tokenizer, cfg, pending, path)
    return summary


def _example(sample: dict, instruction: dict, proposals, summary: PredictSummary) -> dict:
    from ross3d_data.loader import clip_to_tensors

    example = clip_to_tensors(sample)
    example["instruction"] = instruction
    if proposals is not None:
        if example["scene_id"] not in proposals:
            summary.missing_proposals += 1
            ids, boxes = [], torch.zeros(0, 6)
        else:
            ids, boxes = proposals[example["scene_id"]]
        example["object_ids"], example["boxes"] = torch.tensor(ids, dtype=torch.long), boxes
    return example


@torch.no_grad()
def _flush(model, tokenizer, cfg: PredictConfig, examples: list[dict], path: Path) -> int:
    from ross3d_model.batch import collate_examples
    from ross3d_model.generation import predict

    batch = collate_examples(examples, tokenizer, model.cfg, train=False)
    records = predict(model, batch, tokenizer)
    with path.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
    return len(records)


def run_predict(cfg: PredictConfig, progress=None) -> list[PredictSummary]:
    """Load the checkpoint once and predict each benchmark; returns one summary each."""
    torch.manual_seed(0)
    model, tokenizer = load_checkpoint(cfg.checkpoint)
    if cfg.max_new_tokens is not None:  # generation reads the limit from the model config
        model.cfg.text.max_new_tokens = cfg.max_new_tokens
    summaries = []
    for task in cfg.benchmarks:
        summaries.append(predict_benchmark(model, tokenizer, cfg, task))
        if progress is not None:
            progress(summaries[-1])
    return summaries
