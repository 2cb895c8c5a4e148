"""`ross3d-model predict`: benchmark predictions in exactly the JSON-lines formats that
`ross3d-eval score` reads (docs/contracts.md section 4).

Examples come from build-shards output through `ross3d_data.shards.reader.ShardReader`, in (clip, id)
order, so consecutive questions share a clip and batches reuse its prefill (generation.py).
Protocols (`--inference-protocol`): "reference" is the public eval code's input (`ross3d/eval/model_*.py`:
no spatial prompt, greedy, up to 512 new tokens); "ours" keeps the training prompt (spatial
prompt) and the model config's `text.max_new_tokens`. On CUDA "reference" runs in fp16 as the
public eval does (`ross3d/model/builder.py` ~27-36 loads the model with torch_dtype float16;
`model_*.py` casts every video_dict entry, world coordinates and boxes included, with
`.half()`), "ours" in bf16; `dtype` overrides either. In fp16 the token-cell coordinates, the
candidate boxes and the Scan2Cap query box are rounded to fp16 values before the model sees
them (the Scan2Cap proposal is matched to the GT box in float32 first, as the public question
files are made offline). `dump_inputs` writes each item's decoded model input. Either way:

* grounding candidates are the scene's GT boxes stored in the shards (an oracle upper bound)
  unless `boxes` is given: our boxes.json `{scene_id: {object_id: [cx, cy, cz, dx, dy, dz]}}`
  or the published Mask3D proposals `scannet_{val,test}_pred_box.json` (`{"scannet/<scene>":
  [[cx, cy, cz, dx, dy, dz], ...]}`, ids = list positions; `ross3d_benchmarks.read_boxes_json`
  reads both, `ross3d-data proposals` makes the latter from LEO's Mask3D masks);
* Scan2Cap never sees the GT box outside the train split: `<coord>` is queried with the proposal
  of highest IoU >= 0.5 with the GT box (Ross3D `scripts/3d/preprocessing/process_scan2cap.py`
  ~110-123) and that proposal's box is reported; an object without one gets the empty caption
  (and its best proposal's box, or zeros) without running the model: Video-3D-LLM's rule
  (`llava/eval/model_scan2cap.py` lines 199-200), not Ross3D's, whose `model_scan2cap.py`
  ~199-257 captions such an object without a box.
  Scan2Cap at val/test therefore needs `boxes` (pass the GT boxes.json for an oracle bound).

Output is appended batch by batch; ids already predicted are skipped, so a killed run resumes
(files and multi-process parts: predict_parts.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ross3d_benchmarks import (
    GROUNDING_TASKS,
    QA_TASKS,
    TASKS,
    prediction_key,
    read_boxes_json,
)
from ross3d_eval.boxes import box_iou_matrix
from ross3d_eval.result import prediction_meta_path

from ross3d_model.inference.cost import cpu_cost_note
from ross3d_model.inference.parts import (
    PredictionMeta,
    append_records,
    check_or_write_meta,
    done_keys,
    merge_parts,
    part_path,
    part_paths,
)
from ross3d_model.inference.progress import ProgressBar

BENCHMARKS = TASKS
PROTOCOLS = ("reference", "ours")
REFERENCE_MAX_NEW_TOKENS = 512  # public eval code (model_*.py)
SCAN2CAP_MIN_IOU = 0.5  # proposal matched to the GT box (process_scan2cap.py --threshold)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CUDA_DTYPE = {"reference": "fp16", "ours": "bf16"}  # builder.py ~27-36: the public eval's fp16

__all__ = ["BENCHMARKS", "PredictConfig", "instruction_key", "run_predict"]


@dataclass
class PredictConfig:
    checkpoint: Path  # a training OUTPUT_DIR (uses OUTPUT_DIR/model) or an exported model folder
    shards: Path
    benchmarks: list[str]
    out: Path  # PRED.jsonl; with several benchmarks "{benchmark}" in the name is replaced
    split: str = "val"
    batch_size: int = 8
    boxes: Path | None = None  # eval-time proposals instead of the GT boxes
    max_new_tokens: int | None = None  # None: the protocol's (reference 512, ours the model's)
    limit: int | None = None  # at most this many examples per benchmark (smoke runs)
    protocol: str = "reference"
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str | None = None  # bf16 | fp16 | fp32; None: CUDA_DTYPE[protocol] on cuda, else fp32
    prefix_reuse: bool = True  # one prefill of the system prompt + frames per clip and batch
    dump_inputs: Path | None = None  # JSON lines {id, benchmark, text}: each decoded model input

    def __post_init__(self) -> None:
        unknown = sorted(set(self.benchmarks) - set(BENCHMARKS))
        if unknown or not self.benchmarks:
            raise ValueError(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"split must be train/val/test, got {self.split!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.boxes is not None and not Path(self.boxes).is_file():
            raise ValueError(f"{self.boxes}: proposals file not found")
        if len(self.benchmarks) > 1 and "{benchmark}" not in str(self.out):
            raise ValueError("with several benchmarks, --out must contain '{benchmark}'")
        if "scan2cap" in self.benchmarks and self.split != "train" and self.boxes is None:
            raise ValueError(
                f"scan2cap at {self.split} needs --proposals: <coord> is queried with the "
                "proposal of highest IoU >= 0.5 with the GT box, never the GT box itself; pass "
                "the GT boxes.json as --proposals for an oracle upper bound"
            )
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} asked for but CUDA is not available")
        on_cuda = self.device.startswith("cuda")
        self.dtype = self.dtype or (CUDA_DTYPE[self.protocol] if on_cuda else "fp32")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")

    @property
    def spatial_prompt(self) -> bool:
        return self.protocol == "ours"

    @property
    def fp16_inputs(self) -> bool:
        """Coordinates and boxes rounded to fp16 values (the public `.half()` casts)."""
        return self.dtype == "fp16"

    def new_tokens(self, model_default: int) -> int:
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return REFERENCE_MAX_NEW_TOKENS if self.protocol == "reference" else model_default


@dataclass
class PredictSummary:
    benchmark: str
    path: Path
    items: int = 0  # distinct prediction ids of the benchmark in the split (after --limit)
    written: int = 0
    skipped_existing: int = 0
    missing_proposals: int = 0  # examples whose scene is absent from the proposals file
    unmatched: int = 0  # scan2cap objects without a proposal at IoU >= 0.5 (empty caption)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add(self, other: PredictSummary) -> None:
        """Sum another rank's counts into this one."""
        for name in ("written", "missing_proposals", "unmatched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds = max(self.seconds, other.seconds)


def output_path(cfg: PredictConfig, benchmark: str) -> Path:
    return Path(str(cfg.out).replace("{benchmark}", benchmark))


def instruction_key(instruction: dict) -> tuple:
    """`prediction_key` of the prediction this instruction produces."""
    fields = {"scene_id": instruction["scene_id"], **instruction["eval"]}
    try:
        return prediction_key(instruction["task"], fields)
    except KeyError as err:
        raise ValueError(f"instruction {instruction['id']}: eval lacks {err} for scoring") from err


def load_checkpoint(path: Path, device: str = "cpu", dtype: str = "fp32"):
    """(inference model in eval mode on `device` in `dtype`, tokenizer) from an exported folder
    or a training OUTPUT_DIR."""
    from ross3d_model.inputs.tokenizer import build_tokenizer, special_token_ids
    from ross3d_model.weights.build import from_pretrained
    from ross3d_model.weights.model_folder import TOKENIZER_DIR, find_model_folder

    folder = find_model_folder(path)
    tokenizer = build_tokenizer(folder / TOKENIZER_DIR)
    # lean: meta skeleton, memory-mapped weights, no VAE and no denoiser (never used here)
    model = from_pretrained(folder, DTYPES[dtype], device=device, inference=True)
    model.set_special_ids(special_token_ids(tokenizer))
    return model.eval(), tokenizer


def _read_proposals(path: Path | None) -> dict[str, tuple[list[int], torch.Tensor]] | None:
    if path is None:
        return None
    table = read_boxes_json(Path(path))
    return {
        scene: (list(objs), torch.tensor(list(objs.values()), dtype=torch.float32).reshape(-1, 6))
        for scene, objs in table.items()
    }


@dataclass(frozen=True)
class Item:
    key: tuple  # the prediction's id (prediction_key)
    clip: str  # shard clip key
    instruction: dict


def eval_items(reader, cfg: PredictConfig, task: str) -> list[Item]:
    """Every distinct prediction id of `task` in the split, in (clip, id) order (at most
    `cfg.limit`): the fixed order of the output file."""
    items, seen = [], set()
    for clip, instruction in reader.examples(cfg.split, [task]):
        key = instruction_key(instruction)
        if key not in seen:
            seen.add(key)
            items.append(Item(key, clip, instruction))
    return items if cfg.limit is None else items[: cfg.limit]


def rank_share(items: list, rank: int, world_size: int) -> list:
    """Contiguous equal shares (a clip is split across at most two ranks)."""
    n = len(items)
    return items[rank * n // world_size : (rank + 1) * n // world_size]


def _gt_query_box(example: dict, instruction: dict) -> torch.Tensor:
    """The GT box of a Scan2Cap instruction (the one batch.py would query with)."""
    from ross3d_model.inputs.batch import query_box

    return query_box({**example, "instruction": instruction})


def match_proposal(gt_6: torch.Tensor, boxes_K6: torch.Tensor) -> tuple[int | None, int | None]:
    """(index of the proposal of highest IoU with the GT box if >= 0.5 else None, index of the
    highest-IoU proposal or None when there are no proposals)."""
    if len(boxes_K6) == 0:
        return None, None
    iou_K = box_iou_matrix(boxes_K6.numpy().astype(np.float64), gt_6.numpy()[None])[:, 0]
    best = int(np.argmax(iou_K))
    return (best if iou_K[best] >= SCAN2CAP_MIN_IOU else None), best


class _Predictor:
    """Examples of one benchmark -> records: proposals, Scan2Cap matching, batches on device."""

    def __init__(self, model, tokenizer, cfg: PredictConfig, reader, summary: PredictSummary):
        self.model, self.tokenizer, self.cfg, self.reader = model, tokenizer, cfg, reader
        self.summary = summary
        self.proposals = _read_proposals(cfg.boxes)
        self.max_new_tokens = cfg.new_tokens(model.cfg.text.max_new_tokens)
        from ross3d_model.inference.generation import PrefixCache

        self.prefix_cache = PrefixCache() if cfg.prefix_reuse else None  # across batches

    def example(self, item: Item) -> dict:
        """The loader example of `item`, or {"record": ...} for a Scan2Cap object no proposal
        matches (the empty caption; the model is not run)."""
        from ross3d_data.shards.loader import clip_to_tensors

        example = clip_to_tensors(self.reader.clip(item.clip))
        instruction = item.instruction
        gt = None
        if instruction["task"] == "scan2cap" and self.cfg.split != "train":
            gt = _gt_query_box(example, instruction)  # before proposals replace the boxes
        if self.proposals is not None:
            ids, boxes = self.proposals.get(example["scene_id"], ([], torch.zeros(0, 6)))
            self.summary.missing_proposals += example["scene_id"] not in self.proposals
            example["object_ids"], example["boxes"] = torch.tensor(ids, dtype=torch.long), boxes
        if gt is not None:
            matched, best = match_proposal(gt, example["boxes"])
            if matched is None:
                self.summary.unmatched += 1
                box = example["boxes"][best] if best is not None else torch.zeros(6)
                return {"record": _empty_caption(example["scene_id"], instruction, box)}
            instruction = {**instruction, "boxes": [example["boxes"][matched].tolist()]}
        if instruction["task"] in GROUNDING_TASKS and len(example["boxes"]) == 0:
            return {"record": _no_candidates(example["scene_id"], instruction)}
        if self.cfg.fp16_inputs:
            example["boxes"] = fp16_values(torch.as_tensor(example["boxes"]))
            boxes = [fp16_values(torch.tensor(b)).tolist() for b in instruction["boxes"]]
            instruction = {**instruction, "boxes": boxes}
        example["instruction"] = instruction
        return example

    @torch.no_grad()
    def records(self, items: list[Item]) -> list[dict]:
        """Prediction records of `items`, in order."""
        from ross3d_model.inference.generation import predict
        from ross3d_model.inputs.batch import collate_examples

        examples = [self.example(item) for item in items]
        todo = [ex for ex in examples if "record" not in ex]
        out, texts = iter([]), []
        if todo:
            batch = collate_examples(
                todo, self.tokenizer, self.model.cfg, train=False,
                spatial_prompt=self.cfg.spatial_prompt,
            )  # fmt: skip
            if self.cfg.fp16_inputs:  # after the collate's own cell rule (camera-centre fill)
                batch["coords"] = fp16_values(batch["coords"])
            texts = decoded_inputs(batch, self.tokenizer)
            batch = _to_device(batch, self.cfg.device)
            records = predict(
                self.model, batch, self.tokenizer, self.max_new_tokens,
                self.cfg.prefix_reuse, self.prefix_cache,
            )  # fmt: skip
            out = iter(records)
        if self.cfg.dump_inputs is not None:
            _dump_inputs(self.cfg.dump_inputs, items, examples, iter(texts))
        return [ex["record"] if "record" in ex else next(out) for ex in examples]


def fp16_values(x: torch.Tensor) -> torch.Tensor:
    """`x` (float32) rounded to the nearest fp16 values, as the public `.half()` casts do."""
    return x.to(torch.float32).half().to(torch.float32)


def decoded_inputs(batch: dict, tokenizer) -> list[str]:
    """Each row's exact model input as text: chat template included, `<image>` standing for the
    visual tokens, padding left out."""
    return [
        tokenizer.decode(
            ids[mask.bool()].tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
    ]


def _dump_inputs(path: Path, items: list[Item], examples: list[dict], texts) -> None:
    """Append one `{"id", "benchmark", "text"}` line per item; `text` is null for an item the
    model is not run on (a Scan2Cap object without a matched proposal, a scene without
    candidates)."""
    with open(path, "a", encoding="utf-8") as f:
        for item, ex in zip(items, examples, strict=True):
            text = None if "record" in ex else next(texts)
            line = {"id": item.instruction["id"], "benchmark": item.instruction["task"]}
            f.write(json.dumps({**line, "text": text}) + "\n")


def _empty_caption(scene_id: str, instruction: dict, box_6: torch.Tensor) -> dict:
    return {
        "scene_id": scene_id,
        "object_id": instruction["eval"]["object_id"],
        "caption": "",
        "box": [float(x) for x in box_6],
    }


def _no_candidates(scene_id: str, instruction: dict) -> dict:
    """A grounding query of a scene without candidate boxes: no box (Multi3DRefer) or a
    zero-size one (ScanRefer, IoU 0)."""
    record = {"scene_id": scene_id, "ann_id": instruction["eval"]["ann_id"]}
    if instruction["task"] == "multi3drefer":
        return {**record, "boxes": []}
    return {**record, "object_id": instruction["eval"]["object_id"], "box": [0.0] * 6}


def _to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _meta(cfg: PredictConfig, model, task: str) -> PredictionMeta:
    uses_boxes = task not in QA_TASKS and cfg.boxes is not None
    return PredictionMeta(
        protocol=cfg.protocol,
        spatial_prompt=cfg.spatial_prompt,
        max_new_tokens=cfg.new_tokens(model.cfg.text.max_new_tokens),
        proposals=str(Path(cfg.boxes).resolve()) if uses_boxes else None,
        split=cfg.split,
        dtype=cfg.dtype,
        checkpoint=str(Path(cfg.checkpoint).resolve()),
    )


def predict_benchmark(
    model, tokenizer, cfg: PredictConfig, task: str, dist, progress=None, notice=None
):
    """Predict every item of `task` not yet predicted (this rank's share); rank 0 merges the
    parts and, on CPU, passes `notice` what the run will cost (`cpu_cost_note`). Returns this
    rank's summary."""
    from ross3d_data.shards.reader import ShardReader

    start = time.perf_counter()
    path = output_path(cfg, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(task, path)
    reader = ShardReader(cfg.shards)
    items = eval_items(reader, cfg, task)
    done = done_keys(path, task)
    dist.barrier()  # every rank has read what is done before rank 0 writes the sidecar
    if dist.rank == 0:
        check_or_write_meta(prediction_meta_path(path), _meta(cfg, model, task), bool(done))
    dist.barrier()
    pending = [it for it in items if it.key not in done]
    summary.items, summary.skipped_existing = len(items), len(items) - len(pending)
    mine = rank_share(pending, dist.rank, dist.world_size)
    target = path if dist.world_size == 1 else part_path(path, dist.rank, dist.world_size)
    worker = _Predictor(model, tokenizer, cfg, reader, summary)
    default_of = cfg.protocol if cfg.max_new_tokens is None else None
    cost = cpu_cost_note(cfg.device, task, len(pending), worker.max_new_tokens, default_of)
    if notice is not None and dist.rank == 0 and cost is not None:
        notice(cost)
    if progress is not None:
        progress.start(task, len(mine))
    for i in range(0, len(mine), cfg.batch_size):
        chunk = mine[i : i + cfg.batch_size]
        append_records(target, worker.records(chunk))
        summary.written += len(chunk)
        if progress is not None:
            progress.advance(len(chunk))
    dist.barrier()
    if dist.rank == 0 and (dist.world_size > 1 or part_paths(path)):  # parts of any run
        merge_parts(path, task, [it.key for it in items])
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass
class _Dist:
    """This process's rank under torchrun (gloo: only barriers and the summary gather)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> _Dist:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size > 1 and not torch.distributed.is_initialized():
            from datetime import timedelta

            # long timeout: ranks wait at the merge for the slowest share
            torch.distributed.init_process_group("gloo", timeout=timedelta(hours=24))
        return cls(int(os.environ.get("RANK", "0")), world_size)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def total(self, summary: PredictSummary) -> PredictSummary:
        """Rank 0: the summary summed over ranks (others: their own)."""
        if self.world_size == 1:
            return summary
        everyone: list = [None] * self.world_size
        torch.distributed.all_gather_object(everyone, summary)
        if self.rank != 0:
            return summary
        total = everyone[0]
        for other in everyone[1:]:
            total.add(other)
        return total


def check_predict_shards(cfg: PredictConfig) -> None:
    """The shards' clip layout against the exported model's config (its config.json), without
    loading any weight: ShardLayoutError naming both values and the build-shards fix."""
    from ross3d_data.shards.build import read_manifest

    from ross3d_model.configuration.model import Ross3DConfig
    from ross3d_model.inputs.shard_layout import check_shard_layout
    from ross3d_model.weights.model_folder import CONFIG_FILE, find_model_folder

    folder = find_model_folder(Path(cfg.checkpoint))
    config = json.loads((folder / CONFIG_FILE).read_text())
    model_cfg = Ross3DConfig.from_dict(config["ross3d"])
    check_shard_layout(read_manifest(Path(cfg.shards))["sample"], model_cfg, cfg.shards)


def run_predict(cfg: PredictConfig, progress=None, show_progress: bool = False, notice=None):
    """Load the checkpoint once and predict each benchmark; returns one summary each (under
    torchrun: rank 0's summaries are summed over ranks). `progress(summary)` is called after
    each benchmark (rank 0 only); `show_progress` draws a progress bar on rank 0; `notice(line)`
    gets what a CPU run will cost, before it starts (rank 0)."""
    dist = _Dist.from_env()
    if cfg.dump_inputs is not None:
        if dist.world_size > 1:
            raise ValueError("--dump-inputs runs in one process (not under torchrun)")
        Path(cfg.dump_inputs).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.dump_inputs).write_text("")  # this run's inputs only
    if dist.world_size > 1 and cfg.device == "cuda":
        cfg.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    check_predict_shards(cfg)  # before the model is loaded: a mismatch is one line, at once
    torch.manual_seed(0)
    model, tokenizer = load_checkpoint(cfg.checkpoint, cfg.device, cfg.dtype)
    bar = ProgressBar(f" (rank 0 of {dist.world_size})" if dist.world_size > 1 else "")
    summaries = []
    try:
        for task in cfg.benchmarks:
            bar_here = bar if show_progress and dist.rank == 0 else None
            mine = predict_benchmark(model, tokenizer, cfg, task, dist, bar_here, notice)
            summaries.append(dist.total(mine))
            if progress is not None and dist.rank == 0:
                progress(summaries[-1])
    finally:
        bar.stop()
    return summaries
