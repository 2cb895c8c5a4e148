"""Run configs: which model config to build, how to train it and which data to read.

A run config is one JSON file (`configs/tiny.json`, `configs/7b.json` ship with the package):

    {"model": "tiny",                       # model config name (configs/model/) or a JSON path
     "train": {...TrainConfig fields...},
     "data": {...DataConfig fields...}}

or `{"base": "7b", ...}`: a shipped run config (or a path) and only what differs from it
(`configuration.variants`; `7b-plus.json`, `7b-semi.json`). The run config "7b" and the model
config "7b" are different files: errors say which kind they mean.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ross3d_benchmarks import TASKS
from ross3d_data.core.ids import PREFIXED_DATASETS, SCANNET
from ross3d_data.shards.sampling import epoch_steps

from ross3d_model.configuration.schema import build_section
from ross3d_model.configuration.variants import resolve_file

RUN_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEEPSPEED_DIR = RUN_CONFIG_DIR / "deepspeed"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping. `global_batch_size` (examples per optimiser step over all
    processes) is the recipe: the accumulation is derived from it when the run starts,
    `grad_accum = global_batch_size / (micro_batch_size x world size)` (REFERENCE 3: 256 = 1 x
    32 x 8, or 1 x 16 x 16 on two nodes), so the data order and the step count do not depend
    on the world size (`for_world`; an indivisible combination is refused naming the options).
    Without it, `grad_accum` (default 1) is fixed and the global batch follows the world size;
    both set must agree at the run's world size.

    `max_steps` null = `epochs` epochs of the run's data: derived when the run starts from the
    shard data, the world size and `data.group_by_task` (`steps_per_epoch`;
    `training.task.with_derived_steps`). An explicit `max_steps` wins and `epochs` is unused."""

    max_steps: int | None = 100  # optimiser steps; None = epochs x steps_per_epoch of the data
    epochs: int = 1
    micro_batch_size: int = 1  # examples per process in one forward/backward pass
    global_batch_size: int | None = None  # the recipe's invariant; None: grad_accum is fixed
    grad_accum: int | None = None  # None: derived from global_batch_size (else 1)
    lr: float = 1e-5  # peak learning rate (AdamW), reached after the warm-up, then cosine decay
    weight_decay: float = 0.0  # AdamW weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    adam_eps: float = 1e-8  # AdamW epsilon
    warmup_ratio: float = 0.03  # share of max_steps over which the learning rate warms up linearly
    max_grad_norm: float = 1.0  # the global gradient norm is clipped to this
    bf16: bool = False  # bf16 training: DeepSpeed bf16 (fp32 master copy), else bf16 autocast
    tf32: bool = False  # allow TF32 matmuls on CUDA
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (less memory)
    deepspeed: str | None = None  # "zero2", "zero3" (shipped), a JSON path, or None (plain DDP)
    save_every: int = 50  # checkpoint every N optimiser steps (and at the end)
    keep_checkpoints: int = 2  # newest N checkpoints kept; 0 keeps all
    log_every: int = 1  # a metrics.jsonl record every N optimiser steps
    seed: int = 0  # seed of the initial weights, the data order and the masks
    prefetch: int = 2  # micro-batches collated ahead in a background thread; 0 = inline
    max_bad_fraction: float = 0.01  # of the run's micro-batches skipped for data errors
    save_every_minutes: float | None = None  # also checkpoint when this much time has passed
    collective_timeout_s: float = 1800.0  # process-group timeout (saves and exports are long)

    def __post_init__(self) -> None:
        names = ("epochs", "micro_batch_size", "save_every", "log_every")
        optional = ("max_steps", "grad_accum", "global_batch_size")
        for name in names + tuple(n for n in optional if getattr(self, n) is not None):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"train.{name} must be an int >= 1, got {value!r}",
            )
        _check(math.isfinite(self.lr) and self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        _check(0 <= self.warmup_ratio < 1, "train.warmup_ratio must be in [0, 1)")
        _check(self.max_grad_norm > 0, "train.max_grad_norm must be > 0")
        _check(self.keep_checkpoints >= 0, "train.keep_checkpoints must be >= 0")
        _check(self.prefetch >= 0, "train.prefetch must be >= 0")
        _check(0 <= self.max_bad_fraction < 1, "train.max_bad_fraction must be in [0, 1)")
        _check(
            self.save_every_minutes is None or self.save_every_minutes > 0,
            "train.save_every_minutes must be > 0 or null",
        )
        _check(self.collective_timeout_s > 0, "train.collective_timeout_s must be > 0")
        if self.global_batch_size is not None and self.grad_accum is not None:
            per_process = self.micro_batch_size * self.grad_accum
            _check(
                self.global_batch_size % per_process == 0,
                f"train.global_batch_size {self.global_batch_size} is not a multiple of "
                f"train.micro_batch_size x train.grad_accum = {per_process}: no world size "
                "fits both (set only global_batch_size)",
            )
        self.adam_betas = tuple(float(b) for b in self.adam_betas)
        _check(
            len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
            "train.adam_betas must be two values in [0, 1)",
        )
        if self.deepspeed is not None:  # fail early: unknown name, missing file, contradiction
            ds = load_deepspeed_config(self.deepspeed)
            check_deepspeed_config(ds, self, where=f"DeepSpeed config {self.deepspeed}")

    def accumulation(self, world_size: int) -> int:
        """Micro-batches per optimiser step on each of `world_size` processes: derived from
        `global_batch_size` when set, else `grad_accum` (1 when null). ValueError (one line,
        naming the options) when the global batch does not split evenly."""
        if self.global_batch_size is None:
            return 1 if self.grad_accum is None else self.grad_accum
        per_pass = self.micro_batch_size * world_size
        if self.global_batch_size % per_pass:
            raise ValueError(self._indivisible(world_size))
        accum = self.global_batch_size // per_pass
        _check(
            self.grad_accum is None or self.grad_accum == accum,
            f"train.global_batch_size {self.global_batch_size} != train.micro_batch_size "
            f"{self.micro_batch_size} x train.grad_accum {self.grad_accum} x {world_size} "
            f"processes; set only global_batch_size (grad_accum {accum} is derived)",
        )
        return accum

    def _indivisible(self, world_size: int) -> str:
        g, m = self.global_batch_size, self.micro_batch_size
        worlds = [w for w in range(1, g // m + 1) if g % (m * w) == 0]
        micros = [b for b in range(1, g // world_size + 1) if g % (b * world_size) == 0]
        step = m * world_size
        near = (g - g % step, g - g % step + step)
        return (
            f"train.global_batch_size {g} cannot be split over {world_size} processes x "
            f"micro-batch {m}; options: world sizes {_short(worlds)} at micro-batch {m}, "
            f"micro_batch_size {_short(micros) or 'none'} at {world_size} processes, or "
            f"global_batch_size {' / '.join(str(n) for n in near if n > 0)}"
        )

    def for_world(self, world_size: int) -> TrainConfig:
        """This config resolved for `world_size` processes: `grad_accum` (`accumulation`) and
        `global_batch_size` both set, as the run saves it (idempotent at the same world size;
        another world size is then refused as a contradiction)."""
        _check(world_size >= 1, f"world size must be >= 1, got {world_size}")
        accum = self.accumulation(world_size)
        return dataclasses.replace(
            self,
            grad_accum=accum,
            global_batch_size=self.micro_batch_size * accum * world_size,
        )

    def batch_line(self, world_size: int) -> str:
        """The global batch and how it is split, for the start of a run and the dry run."""
        accum = self.accumulation(world_size)
        return (
            f"global batch {self.micro_batch_size * accum * world_size} = micro-batch "
            f"{self.micro_batch_size} x accumulation {accum} x {world_size} processes"
        )

    @property
    def warmup_steps(self) -> int:
        if self.max_steps is None:
            raise ValueError(
                "train.max_steps is null (derived from the data when the run starts): "
                "no warm-up length before that"
            )
        return math.ceil(self.warmup_ratio * self.max_steps)


@dataclass
class DataConfig:
    """Which shards, which examples and in which order (ross3d_data.shards.sampling).

    `tasks` None = all tasks. `vision_only_scenes`: a file of scene ids (one per line, e.g.
    ScanNet's scannetv2_train.txt); its clips that no instruction names are trained on without
    text (reconstruction losses only; the semi-supervised variant). A clip that any val/test
    instruction or split list names is never used so. None = no vision-only clips (the paper's
    main recipe). `vision_only_sources`: dataset name (`scannet`, `arkitscenes`, `3rscan`,
    `multiscan`, `scannetpp`) -> share of the optimiser steps its text-free clips take, or null
    for "as many batches as its clips fill"; every text-free clip of those datasets in the
    shards trains the reconstruction losses only, each dataset in batches of its own (needs
    `group_by_task`). `group_by_task`: every global batch from one task group (QA, caption,
    grounding, vision-only), the batches shuffled (the recipe's --group_by_task_length);
    False = one uniform permutation of all examples."""

    shards: str | None = None  # shard folder; the CLI's --shards overrides it
    tasks: list[str] | None = None  # benchmarks whose instructions train; null = all
    vision_only_scenes: str | None = None
    vision_only_sources: dict[str, float | None] | None = None
    group_by_task: bool = False
    split: str = "train"  # the split whose instructions train: train / val / test

    def __post_init__(self) -> None:
        _check(
            self.vision_only_scenes is None or isinstance(self.vision_only_scenes, str),
            "data.vision_only_scenes must be a file path or null",
        )
        _check(isinstance(self.group_by_task, bool), "data.group_by_task must be true/false")
        if self.vision_only_sources is not None:
            self._check_sources(self.vision_only_sources)
        if self.tasks is not None:
            unknown = sorted(set(self.tasks) - set(TASKS))
            _check(not unknown, f"data.tasks has unknown tasks {unknown}; known: {TASKS}")
        _check(self.split in ("train", "val", "test"), "data.split must be train/val/test")

    def _check_sources(self, sources: dict) -> None:
        known = (SCANNET, *PREFIXED_DATASETS)
        _check(isinstance(sources, dict), "data.vision_only_sources must map dataset -> share")
        unknown = sorted(set(sources) - set(known))
        _check(not unknown, f"data.vision_only_sources: unknown datasets {unknown}; known: {known}")
        shares = [s for s in sources.values() if s is not None]
        _check(
            all(isinstance(s, int | float) and 0 < s < 1 for s in shares) and sum(shares) < 1,
            f"data.vision_only_sources: shares must be in (0, 1) and sum below 1, got {sources}",
        )
        _check(
            self.group_by_task or not shares,
            "data.vision_only_sources: a share of the steps needs data.group_by_task true",
        )


@dataclass
class RunConfig:
    """One training run. `model` names a *model config* (`configs/model/`, `load_config`) or a
    JSON path; the run config itself is loaded by `load_run_config` (`configs/`)."""

    model: str = "tiny"
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "run config") -> RunConfig:
        """From a JSON object; one-line errors prefixed with `where` (the file) once: an
        unknown key lists its section's valid keys, a wrong type names the key and the expected
        type (`schema.build_section`)."""
        try:
            return build_section(cls, data)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _short(values: list[int], most: int = 12) -> str:
    shown = ", ".join(str(v) for v in values[:most])
    return shown + (", ..." if len(values) > most else "")


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
    data = resolve_file(path, "run config", shipped, _localize_model)
    return RunConfig.from_dict(data, where=str(path))


def _localize_model(data: dict, folder: Path) -> dict:
    """A relative `model` path that names a file beside the run config is made absolute
    (found from any working directory); shipped model config names are kept."""
    model = data.get("model")
    if isinstance(model, str) and not Path(model).is_absolute() and (folder / model).is_file():
        return {**data, "model": str((folder / model).resolve())}
    return data


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


def deepspeed_run_values(train: TrainConfig, world_size: int | None = None) -> dict[str, tuple]:
    """DeepSpeed key (dotted) -> (the run config field it must equal, that field's value): the
    keys whose "auto" the run fills. With a world size the accumulation is the derived one
    (`TrainConfig.accumulation`) and `train_batch_size` the global batch; without one,
    `train_batch_size` is checked only against `train.global_batch_size` and the accumulation
    only when `train.grad_accum` is set."""
    values = {
        "train_micro_batch_size_per_gpu": ("train.micro_batch_size", train.micro_batch_size),
        "gradient_clipping": ("train.max_grad_norm", train.max_grad_norm),
        "bf16.enabled": ("train.bf16", train.bf16),
        "fp16.enabled": ("fp16 (never used: the run trains bf16 or fp32)", False),
        "optimizer.params.lr": ("train.lr", train.lr),
        "optimizer.params.betas": ("train.adam_betas", list(train.adam_betas)),
        "optimizer.params.eps": ("train.adam_eps", train.adam_eps),
        "optimizer.params.weight_decay": ("train.weight_decay", train.weight_decay),
    }
    if world_size is not None:
        accum = train.accumulation(world_size)
        values["gradient_accumulation_steps"] = (
            f"accumulation at world size {world_size}" if train.global_batch_size else
            "train.grad_accum", accum,
        )  # fmt: skip
        values["train_batch_size"] = (
            f"train.micro_batch_size x accumulation x world size {world_size}",
            train.micro_batch_size * accum * world_size,
        )
    else:
        if train.grad_accum is not None:
            values["gradient_accumulation_steps"] = ("train.grad_accum", train.grad_accum)
        if train.global_batch_size is not None:
            values["train_batch_size"] = ("train.global_batch_size", train.global_batch_size)
    return values


def check_deepspeed_config(
    ds: dict, train: TrainConfig, world_size: int | None = None, where: str = "DeepSpeed config"
) -> None:
    """ValueError when a literal (not "auto") in DeepSpeed config `ds` differs from the run's
    value of the same setting (lr, weight decay, clipping, batch sizes, bf16, ...): DeepSpeed
    would silently train with its own. "auto" takes the run's value."""
    conflicts = []
    for dotted, (field_name, value) in deepspeed_run_values(train, world_size).items():
        literal = _dotted_get(ds, dotted)
        if literal is _MISSING or literal == "auto":
            continue
        same = list(literal) == value if isinstance(literal, list | tuple) else literal == value
        if not same or isinstance(literal, bool) != isinstance(value, bool):
            conflicts.append(f"{dotted}={literal!r} contradicts the run's {field_name}={value!r}")
    if conflicts:
        raise ValueError(f"{where}: " + "; ".join(conflicts) + ' (use "auto" for the run\'s value)')


_MISSING = object()


def _dotted_get(node, dotted: str):
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def steps_per_epoch(counts: Mapping[str, int], global_batch: int, group_by_task: bool) -> int:
    """Optimiser steps of one epoch of `counts` (task group -> examples) at `global_batch`, as
    `ross3d_data.shards.sampling.epoch_order` cuts it: task-grouped, each group gives
    `n // global_batch` batches (its incomplete last block dropped); else all examples together
    give `N // global_batch`. The 7b recipe: QA 105,960, captions 36,665, grounding 80,503 at
    256 -> 413 + 143 + 314 = 870."""
    return epoch_steps(counts, global_batch, group_by_task)
