"""The Ross3D training task: shards -> (clip, instruction) items -> model batches -> named losses.

Shards are read only through ``ross3d_data.shards.reader.ShardReader``. Items are ``(clip key,
instruction | None)`` pairs: the split's instructions (``data.tasks`` only, if set) plus one
vision-only item per usable clip of ``data.vision_only_scenes`` and of the datasets in
``data.vision_only_sources`` (each its own group, with its share of the steps). Epoch e's order is
``ross3d_data.shards.sampling.epoch_order`` from ``(seed, e)`` with the global batch (micro-batch x
accumulation x world size) and ``data.group_by_task``; the trainer's ``micro_batches`` cuts it
into micro-batches, and clips are decoded only when a micro-batch is collated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import torch
from rich.console import Console
from ross3d_data.core.ids import dataset_of
from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sampling import (
    epoch_order,
    epoch_steps,
    full_blocks,
    is_vision_group,
    source_blocks,
    task_group,
    vision_group,
)

from ross3d_model.configuration.model import LOCAL_SUFFIXES, Ross3DConfig
from ross3d_model.configuration.run import DataConfig
from ross3d_model.inputs.batch import collate_examples
from ross3d_model.inputs.caches import ClipCaches
from ross3d_model.inputs.shard_layout import check_shard_layout
from ross3d_model.inputs.tokenizer import build_tiny_tokenizer, build_tokenizer, special_token_ids
from ross3d_model.modeling.model import Ross3DForCausalLM
from ross3d_model.modeling.objective import cross_view_active
from ross3d_model.training.data import micro_batches
from ross3d_model.training.engine import world_size_from_env
from ross3d_model.weights.build import from_config
from ross3d_model.weights.model_folder import write_model_folder

DATA_ORDER_FILE = "data_order.jsonl"
VISION_TASK = "vision"  # the "task" of a vision-only item in data_order.jsonl


def load_tokenizer(cfg: Ross3DConfig):
    """The config's tokenizer, else the pretrained LLM's, else the built-in tiny one."""
    source = cfg.tokenizer or cfg.llm.pretrained
    return build_tokenizer(source) if source else build_tiny_tokenizer()


def build_training_model(
    cfg: Ross3DConfig, tokenizer, dtype: torch.dtype | None = None
) -> Ross3DForCausalLM:
    """The model training starts from: `from_config` (pretrained parts assigned onto a meta
    skeleton) in `dtype` (None = float32; the trainer passes bf16 when DeepSpeed trains in
    bf16: `trainer.build_dtype`, half the host memory at start-up), with the tokenizer's
    special ids."""
    model = from_config(cfg, dtype=dtype)
    model.set_special_ids(special_token_ids(tokenizer))
    return model


def read_scene_ids(path: str | Path) -> list[str]:
    """Scene ids of a list file (``data.vision_only_scenes``), clear error when missing."""
    from ross3d_data.shards.build import read_scene_list

    if not Path(path).is_file():
        raise ValueError(
            f"data.vision_only_scenes: {path} not found (a file of scene ids, one per line, "
            "e.g. ScanNet's scannetv2_train.txt)"
        )
    return read_scene_list(Path(path))


class Ross3DTask:
    """`TrainTask` for Ross3DForCausalLM over build-shards output."""

    def __init__(
        self,
        model_cfg: Ross3DConfig,
        shards: str | Path | ShardReader,
        data: DataConfig,
        *,
        seed: int = 0,
        global_batch: int = 1,
        tokenizer=None,
    ):
        self.cfg = model_cfg
        self.data = data
        self.seed = seed
        self.global_batch = global_batch
        self._tokenizer = tokenizer
        self.hidden_size = model_cfg.llm.hidden_size
        self.reader = shards if isinstance(shards, ShardReader) else ShardReader(shards)
        check_shard_layout(self.reader.manifest["sample"], model_cfg, self.reader.folder)
        scenes = read_scene_ids(data.vision_only_scenes) if data.vision_only_scenes else []
        # held-out clips named by the list are refused by the reader (never trained without text)
        self.vision_only_refused = self.reader.vision_only(scenes)[1]
        sources = data.vision_only_sources or {}
        self.examples = self.reader.examples(
            data.split, data.tasks, vision_only=scenes, vision_sources=sources
        )
        self.groups = [self._group(key, instruction) for key, instruction in self.examples]
        self.blocks_per_group = self._source_blocks(sources)
        self.caches = ClipCaches.open(self.reader, model_cfg)  # the folder's per-clip caches

    @property
    def tokenizer(self):
        """Loaded on first use (a dry run never needs it)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.cfg)
        return self._tokenizer

    def _group(self, key: str, instruction: dict | None) -> str:
        """Task group; with `data.vision_only_sources` each dataset's text-free clips are a
        group of their own (`vision:<dataset>`), so its share of the steps can be set."""
        if instruction is None and self.data.vision_only_sources:
            return vision_group(dataset_of(key))
        return task_group(instruction)

    def _source_blocks(self, sources: dict[str, float | None]) -> dict[str, int]:
        """Global batches per epoch of each vision-only source given a share of the steps."""
        shares = {vision_group(d): s for d, s in sources.items() if s is not None}
        if not shares:
            return {}
        blocks = full_blocks(Counter(self.groups), self.global_batch)
        text = sum(n for g, n in blocks.items() if not is_vision_group(g))
        return source_blocks(text, shares)

    def steps_by_group(self) -> dict[str, int]:
        """Optimiser steps of one epoch per task group (task-grouped order only)."""
        blocks = full_blocks(Counter(self.groups), self.global_batch) | self.blocks_per_group
        return dict(sorted(blocks.items()))

    def steps_per_epoch(self) -> int:
        """Optimiser steps of one epoch of this task's items (`epoch_items` / global batch)."""
        counts = Counter(self.groups)
        return epoch_steps(
            counts, self.global_batch, self.data.group_by_task, self.blocks_per_group
        )

    def build_model(self, dtype: torch.dtype | None = None) -> Ross3DForCausalLM:
        """The model with its pretrained parts (`build_training_model`)."""
        return build_training_model(self.cfg, self.tokenizer, dtype)

    def epoch_items(self, epoch: int) -> list[tuple[str, dict | None]]:
        """Epoch ``epoch``'s items in global order (a multiple of ``global_batch`` long)."""
        order = epoch_order(
            self.groups,
            seed=self.seed,
            epoch=epoch,
            global_batch=self.global_batch,
            group_by_task=self.data.group_by_task,
            blocks_per_group=self.blocks_per_group,
        )
        return [self.examples[i] for i in order]

    def collate(self, items: list[tuple[str, dict | None]], seed: int) -> dict:
        from ross3d_data.shards.loader import clip_to_tensors

        examples = []
        for key, instruction in items:
            clip = self.reader.clip(key)
            example = clip_to_tensors(clip)
            example["instruction"] = instruction
            self.caches.attach(key, clip, example)
            examples.append(example)
        return collate_examples(examples, self.tokenizer, self.cfg, train=True, seed=seed)

    def to_device(self, batch: dict, device: torch.device) -> dict:
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def losses(self, model, batch: dict, cross_view: bool) -> dict:
        return model(batch, cross_view=cross_view).losses

    def cross_view_active(self, step: int) -> bool:
        return cross_view_active(step, self.cfg.objective)

    def count_tokens(self, batch: dict) -> int:
        """Text tokens plus visual tokens (newlines included) of the micro-batch."""
        b, v = batch["images"].shape[:2]
        text = int(batch["attention_mask"].sum()) - b  # the <image> placeholders are replaced
        return text + b * v * self.cfg.tokens_per_frame

    def data_fingerprint(self) -> str:
        """Digest of what the data order depends on: the shard folder's manifest, the data
        selection (config without the shard path, the vision-only clips chosen), the seed and
        the global batch. Resume refuses a change."""
        what = {
            "manifest": self.reader.manifest,
            "data": {k: v for k, v in dataclasses.asdict(self.data).items() if k != "shards"},
            "vision_only": [key for key, instruction in self.examples if instruction is None],
            "seed": self.seed,
            "global_batch": self.global_batch,
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def pretrained_files(self) -> dict[str, str]:
        """What this node sees of each pretrained source (`pretrained_sources`): every rank
        of a run must see the same (the trainer compares them before building the model)."""
        return pretrained_sources(self.cfg)

    def enable_gradient_checkpointing(self, model) -> None:
        # Non-reentrant: reentrant checkpointing breaks DDP's find_unused_parameters.
        model.gradient_checkpointing_enable({"use_reentrant": False})

    def export(self, model, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        """A folder `predict` reads: config.json + safetensors + tokenizer/."""
        write_model_folder(model, state_dict, self.tokenizer, out_dir)


PRETRAINED_FIELDS = (
    "init_from", "tokenizer", "vision.pretrained", "llm.pretrained", "vae.pretrained",
    "reconstruction.pretrained_denoiser",
)  # fmt: skip


def pretrained_sources(cfg: Ross3DConfig) -> dict[str, str]:
    """Field -> what this machine has of the source it names: a local file or folder as its
    absolute path and size in bytes, a hub id as the revision in the local hub cache (or "not
    cached": downloaded when the model is built), a missing local path as "missing"."""
    out = {}
    for name in PRETRAINED_FIELDS:
        node = cfg
        for part in name.split("."):
            node = getattr(node, part)
        if node is not None:
            out[name] = _describe_source(str(node))
    return out


def _describe_source(where: str) -> str:
    path = Path(where)
    if path.is_file():
        return f"{path.resolve()} ({path.stat().st_size} bytes)"
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return f"{path.resolve()} ({size} bytes)"
    if path.is_absolute() or where.startswith(".") or path.suffix in LOCAL_SUFFIXES:
        return f"{path.resolve()} missing"
    from huggingface_hub.constants import HF_HUB_CACHE

    ref = Path(HF_HUB_CACHE) / f"models--{where.replace('/', '--')}" / "refs" / "main"
    return (
        f"hub {where} @ {ref.read_text().strip()}" if ref.is_file() else f"hub {where} not cached"
    )


def build_task(run, shards: str | Path | None, world_size: int) -> Ross3DTask:
    """The Ross3D task of a run config over `shards` (else run.data.shards)."""
    from ross3d_model.configuration.model import load_config

    source = shards if shards is not None else run.data.shards
    if source is None:
        raise ValueError("no shards: pass --shards DIR or set data.shards in the run config")
    if not Path(source).is_dir():
        raise ValueError(f"{source}: shard folder not found")
    tcfg = run.train.for_world(world_size)  # refuses an indivisible global batch
    task = Ross3DTask(
        load_config(run.model),
        source,
        run.data,
        seed=tcfg.seed,
        global_batch=tcfg.global_batch_size,
    )
    if task.vision_only_refused:
        refused = task.vision_only_refused
        Console(stderr=True).print(
            f"[yellow]note:[/yellow] {len(refused)} clip(s) of data.vision_only_scenes are "
            f"val/test clips and are not trained on without text: {', '.join(refused[:5])}"
            + (" ..." if len(refused) > 5 else "")
        )
    return task


def with_derived_steps(run, task: Ross3DTask):
    """`run` with `train.max_steps` set when it is null: `train.epochs` x the task's steps per
    epoch (the recipe's 7b data at global batch 256: 870). An explicit value is kept."""
    if run.train.max_steps is not None:
        return run
    steps = run.train.epochs * task.steps_per_epoch()
    return dataclasses.replace(run, train=dataclasses.replace(run.train, max_steps=steps))


def train_from_config(
    run,
    output_dir: str | Path,
    *,
    shards: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    allow_schedule_change: bool = False,
):
    """`ross3d-model train`: the Ross3D task over `shards` (else run.data.shards), trained by
    `training.trainer.train`. Returns its TrainResult."""
    from ross3d_model.training.trainer import train

    world = world_size_from_env()
    run = dataclasses.replace(run, train=run.train.for_world(world))
    task = build_task(run, shards, world)
    run = with_derived_steps(run, task)
    return train(
        run,
        task,
        output_dir,
        resume=resume,
        progress=progress,
        allow_schedule_change=allow_schedule_change,
    )


def order_record(key: str, instruction: dict | None) -> dict:
    """One item of data_order.jsonl."""
    if instruction is None:
        return {"scene_id": key, "task": VISION_TASK, "id": f"{VISION_TASK}/{key}",
                "dataset": dataset_of(key)}  # fmt: skip
    return {"scene_id": key, "task": instruction["task"], "id": instruction["id"]}


def write_data_order(
    run, output_dir: str | Path, *, shards: str | Path | None = None, world_size: int = 1
) -> Path:
    """`train --dry-run`: no model; OUTPUT_DIR/data_order.jsonl gets one line per optimiser step
    of epoch 0, ``{"step": s, "items": [...]}`` (s from 1, as in metrics.jsonl) listing its
    global batch in global micro-batch order (rank r trains micro-batches r, r + W, ... of each
    step). Returns the file."""
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    run = dataclasses.replace(run, train=run.train.for_world(world_size))
    task = build_task(run, shards, world_size)
    Console(stderr=True).print(f"[yellow]note:[/yellow] {run.train.batch_line(world_size)}")
    _report_steps(run, task)
    per_step = run.train.grad_accum * world_size  # micro-batches per optimiser step
    stream = micro_batches(
        task.epoch_items, micro_batch_size=run.train.micro_batch_size, world_size=1, rank=0
    )
    path = Path(output_dir) / DATA_ORDER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for step in range(len(task.epoch_items(0)) // task.global_batch):
            items = [it for _ in range(per_step) for it in next(stream).items]
            line = {"step": step + 1, "items": [order_record(*it) for it in items]}
            f.write(json.dumps(line) + "\n")
    return path


def _report_steps(run, task: Ross3DTask) -> None:
    """The dry run's step count: max_steps as given vs derived from the data (one note line)."""
    derived = task.steps_per_epoch()
    given = run.train.max_steps
    if given is None:
        line = f"max_steps derived: {run.train.epochs} epoch(s) x {derived} steps = "
        line += f"{run.train.epochs * derived}"
    elif given == derived:
        line = f"max_steps {given} (run config) = one epoch of this data"
    else:
        line = f"max_steps {given} (run config) != {derived} steps in one epoch of this data"
    if run.data.group_by_task and derived:
        mix = ", ".join(
            f"{g} {n} ({100 * n / derived:.0f} %)" for g, n in task.steps_by_group().items()
        )
        line += f"; steps per group: {mix}"
    Console(stderr=True).print(f"[yellow]note:[/yellow] {line}", highlight=False)
