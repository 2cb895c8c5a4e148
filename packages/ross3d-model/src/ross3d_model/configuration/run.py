"""Run configs: which model config to build, how to train it and which data to read.

A run config is one JSON file (`configs/tiny.json`, `configs/7b.json` ship with the package):

    {"model": "tiny",                       # model config name (configs/model/) or a JSON path
     "train": {...TrainConfig fields...},
     "data": {...DataConfig fields...}}
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ross3d_benchmarks import TASKS

from ross3d_model.configuration.variants import resolve_file

RUN_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEEPSPEED_DIR = RUN_CONFIG_DIR / "deepspeed"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping. Batch sizes are per process; the global batch is
    micro_batch_size * grad_accum * world_size (REFERENCE 3: 1 x 32 x 8 = 256)."""

    max_steps: int = 100  # optimiser steps
    micro_batch_size: int = 1
    grad_accum: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    bf16: bool = False
    tf32: bool = False
    gradient_checkpointing: bool = False
    deepspeed: str | None = None  # "zero2", "zero3" (shipped), a JSON path, or None (plain DDP)
    save_every: int = 50  # checkpoint every N optimiser steps (and at the end)
    keep_checkpoints: int = 2  # newest N checkpoints kept; 0 keeps all
    log_every: int = 1
    seed: int = 0
    prefetch: int = 2  # micro-batches collated ahead in a background thread; 0 = inline
    max_bad_fraction: float = 0.01  # of the run's micro-batches skipped for data errors

    def __post_init__(self) -> None:
        for name in ("max_steps", "micro_batch_size", "grad_accum", "save_every", "log_every"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"train.{name} must be an int >= 1")
        _check(math.isfinite(self.lr) and self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        _check(0 <= self.warmup_ratio < 1, "train.warmup_ratio must be in [0, 1)")
        _check(self.max_grad_norm > 0, "train.max_grad_norm must be > 0")
        _check(self.keep_checkpoints >= 0, "train.keep_checkpoints must be >= 0")
        _check(self.prefetch >= 0, "train.prefetch must be >= 0")
        _check(0 <= self.max_bad_fraction < 1, "train.max_bad_fraction must be in [0, 1)")
        self.adam_betas = tuple(float(b) for b in self.adam_betas)
        _check(
            len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
            "train.adam_betas must be two values in [0, 1)",
        )
        if self.deepspeed is not None:
            deepspeed_config_path(self.deepspeed)  # fail early on an unknown name / missing file

    @property
    def warmup_steps(self) -> int:
        return math.ceil(self.warmup_ratio * self.max_steps)


@dataclass
class DataConfig:
    """Which shards, which examples and in which order (ross3d_data.shards.sampling).

    `tasks` None = all tasks. `vision_only_scenes`: a file of scene ids (one per line, e.g.
    ScanNet's scannetv2_train.txt); its clips that no instruction names are trained on without
    text (reconstruction losses only; the semi-supervised variant). A clip that any val/test
    instruction or split list names is never used so. None = no vision-only clips (the paper's
    main recipe). `group_by_task`: every global batch from one task group (QA, caption,
    grounding, vision-only), the batches shuffled (the recipe's --group_by_task_length);
    False = one uniform permutation of all examples."""

    shards: str | None = None  # shard folder; the CLI's --shards overrides it
    tasks: list[str] | None = None
    vision_only_scenes: str | None = None
    group_by_task: bool = False
    split: str = "train"

    def __post_init__(self) -> None:
        _check(
            self.vision_only_scenes is None or isinstance(self.vision_only_scenes, str),
            "data.vision_only_scenes must be a file path or null",
        )
        _check(isinstance(self.group_by_task, bool), "data.group_by_task must be true/false")
        if self.tasks is not None:
            unknown = sorted(set(self.tasks) - set(TASKS))
            _check(not unknown, f"data.tasks has unknown tasks {unknown}; known: {TASKS}")
        _check(self.split in ("train", "val", "test"), "data.split must be train/val/test")


@dataclass
class RunConfig:
    model: str = "tiny"
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "run config") -> RunConfig:
        _check(isinstance(data, dict), f"{where}: expected a JSON object")
        unknown = sorted(set(data) - {"model", "train", "data"})
        _check(not unknown, f"{where}: unknown keys {unknown}")
        try:
            return cls(
                model=str(data.get("model", "tiny")),
                train=_sub(TrainConfig, data.get("train", {}), f"{where}.train"),
                data=_sub(DataConfig, data.get("data", {}), f"{where}.data"),
            )
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _sub(cls: type, data: dict, where: str):
    _check(isinstance(data, dict), f"{where}: expected a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    _check(not unknown, f"{where}: unknown keys {unknown}")
    return cls(**data)


def shipped_run_configs() -> dict[str, Path]:
    """Name -> path of every run config shipped in `configs/` (model configs are in
    `configs/model/`)."""
    return {p.stem: p for p in sorted(RUN_CONFIG_DIR.glob("*.json"))}


def load_run_config(name_or_path: str | Path) -> RunConfig:
    """A shipped run config by name ('tiny', '7b', ...: `configs/*.json`, not the model configs
    of the same names) or a JSON file path. A `"base"` key names the run config it overrides
    (`configuration.variants`)."""
    shipped = shipped_run_configs()
    path = shipped.get(str(name_or_path), Path(name_or_path))
    if not path.is_file():
        raise ValueError(f"{path}: no such run config (shipped run configs: {sorted(shipped)})")
    data = resolve_file(path, "run config", shipped)
    return RunConfig.from_dict(data, where=str(path))


def deepspeed_config_path(name_or_path: str) -> Path:
    """'zero2' / 'zero3' -> the shipped file; anything else must be an existing JSON file."""
    shipped = {p.stem: p for p in DEEPSPEED_DIR.glob("*.json")}
    path = shipped.get(name_or_path, Path(name_or_path))
    if not path.is_file():
        raise ValueError(f"{name_or_path}: no such DeepSpeed config (shipped: {sorted(shipped)})")
    return path


def load_deepspeed_config(name_or_path: str) -> dict:
    path = deepspeed_config_path(name_or_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read DeepSpeed config: {err}") from err
    _check(isinstance(data, dict), f"{path}: DeepSpeed config must be a JSON object")
    _check("zero_optimization" in data, f"{path}: DeepSpeed config lacks zero_optimization")
    return data
