"""The training loop: accelerate (plain DDP, gloo on CPU / nccl on CUDA) or DeepSpeed ZeRO-2/3.

This is the only module that touches DeepSpeed / torch.distributed. What is trained is a
`TrainTask` (the Ross3D task lives in `training.task`; tests plug in a toy one), so the loop is
the same for the tiny CPU model and the 7B recipe.

Exactness: every micro-batch reseeds torch's RNG from (seed, global micro-batch index) and the
data order depends only on (seed, epoch), so a resumed run and a run split over more processes
(with proportionally less accumulation) compute the same losses.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ross3d_model.training import checkpointing as ckpt
from ross3d_model.training.config import RunConfig, load_deepspeed_config
from ross3d_model.training.data import MicroBatch, micro_batches
from ross3d_model.training.metrics import (
    CURVE_FILE,
    LOSS_KEYS,
    MetricsLog,
    plot_loss_curves,
    read_metrics,
)

NAMED = ("lm", "cross_view", "bev", "grounding")
EXPORT_DIR = "model"


class TrainTask(Protocol):
    """What the loop needs from a model + data pairing."""

    hidden_size: int  # fills DeepSpeed's hidden-size-based "auto" buckets

    def build_model(self) -> torch.nn.Module: ...
    def epoch_items(self, epoch: int) -> Iterable[Any]: ...  # deterministic order per epoch
    def collate(self, items: list[Any], seed: int) -> Any: ...  # decode + batch
    def to_device(self, batch: Any, device: torch.device) -> Any: ...
    def losses(self, model, batch: Any, cross_view: bool) -> dict[str, torch.Tensor | None]: ...
    def cross_view_active(self, step: int) -> bool: ...
    def count_tokens(self, batch: Any) -> int: ...
    def enable_gradient_checkpointing(self, model: torch.nn.Module) -> None: ...
    def export(self, model, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None: ...


@dataclass
class TrainResult:
    output_dir: Path
    steps: int  # optimiser steps done in total (resumed ones included)
    records: list[dict]
    metrics_path: Path
    curve_path: Path
    export_dir: Path
    samples_per_s: float  # this invocation, global
    tokens_per_s: float


def train(
    run: RunConfig,
    task: TrainTask,
    output_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train `task` for run.train.max_steps optimiser steps, logging to OUTPUT_DIR/metrics.jsonl,
    checkpointing every run.train.save_every steps and exporting the weights to OUTPUT_DIR/model.

    resume=True continues from the newest complete checkpoint (a fresh start if there is none);
    resume=False refuses an output dir that already holds a run."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(output_dir)
    if not resume and (log.path.exists() or ckpt.list_checkpoints(output_dir)):
        raise ValueError(f"{output_dir}: already holds a run; pass --resume or use a new folder")
    with _distributed_env(run.train.deepspeed is not None):
        return _train(run, task, output_dir, log, resume, progress)


def _train(run, task, output_dir, log, resume, progress) -> TrainResult:
    tcfg = run.train
    accelerator = _make_accelerator(run, task)
    torch.manual_seed(tcfg.seed)  # same initial weights on every process
    model = task.build_model()
    model.train()  # pretrained parts load in eval mode, which also disables checkpointing
    if tcfg.gradient_checkpointing:
        task.enable_gradient_checkpointing(model)
    model, optimizer, scheduler = _prepare(accelerator, run, model)
    start = 0
    world, accum = accelerator.num_processes, tcfg.grad_accum
    if resume and (found := ckpt.latest_checkpoint(output_dir)):
        start = ckpt.read_state(found[1])["step"]
        _check_layout(ckpt.read_state(found[1]), found[1], tcfg.micro_batch_size * accum * world)
        accelerator.load_state(str(found[1]))
    if accelerator.is_main_process:
        run.save(output_dir / "run_config.json")
        log.truncate_after(start)
    stream = micro_batches(
        task.epoch_items,
        micro_batch_size=tcfg.micro_batch_size,
        world_size=world,
        rank=accelerator.process_index,
        start=start * accum * world,
    )
    totals = {"samples": 0, "tokens": 0}
    began, cpu_began = time.perf_counter(), time.process_time()
    with _progress(progress and accelerator.is_main_process, start, tcfg.max_steps) as advance:
        for step in range(start, tcfg.max_steps):
            record = _train_step(accelerator, task, model, optimizer, scheduler, stream, step, run)
            totals["samples"] += record["samples"]
            totals["tokens"] += record["tokens"]
            record["elapsed_s"] = round(time.perf_counter() - began, 3)
            record["cpu_s"] = round(time.process_time() - cpu_began, 3)  # this process
            if accelerator.is_main_process and ((step + 1) % tcfg.log_every == 0 or step == 0):
                log.append(record)
            if (step + 1) % tcfg.save_every == 0 or step + 1 == tcfg.max_steps:
                _save_checkpoint(accelerator, output_dir, step + 1, run)
            advance(record)
    elapsed = max(time.perf_counter() - began, 1e-9)
    export_dir = output_dir / EXPORT_DIR
    state_dict = accelerator.get_state_dict(model)  # collective under ZeRO-3
    records = read_metrics(log.path) if log.path.exists() else []
    curve = output_dir / CURVE_FILE
    if accelerator.is_main_process:
        task.export(accelerator.unwrap_model(model), state_dict, export_dir)
        plot_loss_curves(records, curve, title=f"{run.model} ({output_dir.name})")
    accelerator.wait_for_everyone()
    return TrainResult(
        output_dir,
        tcfg.max_steps,
        records,
        log.path,
        curve,
        export_dir,
        totals["samples"] / elapsed,
        totals["tokens"] / elapsed,
    )


def _train_step(accelerator, task, model, optimizer, scheduler, stream, step, run) -> dict:
    """One optimiser step over grad_accum micro-batches; returns the step's metrics record."""
    tcfg = run.train
    cross_view = task.cross_view_active(step)
    sums = torch.zeros(2 * len(LOSS_KEYS) + 2, dtype=torch.float64)
    lr = scheduler.get_last_lr()[0]  # the rate this step's update uses
    for _ in range(tcfg.grad_accum):
        micro: MicroBatch = next(stream)
        seed = tcfg.seed * 1_000_003 + micro.index
        torch.manual_seed(seed)
        batch = task.to_device(task.collate(micro.items, seed), accelerator.device)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                losses = task.losses(model, batch, cross_view)
            accelerator.backward(losses["total"])
            if accelerator.sync_gradients and accelerator.distributed_type.value != "DEEPSPEED":
                accelerator.clip_grad_norm_(model.parameters(), tcfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        _accumulate(sums, losses, len(micro.items), task.count_tokens(batch))
    if accelerator.distributed_type.value != "DEEPSPEED":
        scheduler.step()  # DeepSpeed steps its scheduler itself, once per optimiser step
    return _record(accelerator.reduce(sums, reduction="sum"), step, lr, cross_view, micro.epoch)


def _accumulate(sums: torch.Tensor, losses: dict, samples: int, tokens: int) -> None:
    named = {"loss": losses["total"], **{k: losses.get(k) for k in NAMED}}
    for i, key in enumerate(LOSS_KEYS):
        value = named[key]
        if value is not None:
            sums[2 * i] += float(value.detach().float())
            sums[2 * i + 1] += 1
    sums[-2] += samples
    sums[-1] += tokens


def _record(sums: torch.Tensor, step: int, lr: float, cross_view: bool, epoch: int) -> dict:
    """Each loss = mean over the micro-batches (all processes) that computed it, else null."""
    record: dict[str, Any] = {"step": step + 1}
    for i, key in enumerate(LOSS_KEYS):
        count = float(sums[2 * i + 1])
        record[key] = float(sums[2 * i]) / count if count else None
    record.update(
        lr=lr,
        cross_view_active=cross_view,
        epoch=epoch,
        samples=int(sums[-2]),
        tokens=int(sums[-1]),
    )
    return record


def _check_layout(state: dict, path: Path, examples_per_step: int) -> None:
    """Exact resume needs the same examples per optimiser step (data position = step x that)."""
    saved = state.get("examples_per_step")
    if saved != examples_per_step:
        raise ValueError(
            f"{path}: saved with {saved} examples per step (micro-batch x accumulation x "
            f"processes), this run has {examples_per_step}; resume with the same layout"
        )


def _save_checkpoint(accelerator, output_dir: Path, step: int, run: RunConfig) -> None:
    tcfg = run.train
    path = ckpt.checkpoint_dir(output_dir, step)
    accelerator.save_state(str(path))  # collective under DeepSpeed
    if accelerator.is_main_process:
        world = accelerator.num_processes
        state = {
            "step": step,
            "num_processes": world,
            "examples_per_step": tcfg.micro_batch_size * tcfg.grad_accum * world,
        }
        ckpt.write_state(path, state)
        ckpt.mark_complete(path)
        ckpt.prune(output_dir, tcfg.keep_checkpoints)
    accelerator.wait_for_everyone()


def _make_accelerator(run: RunConfig, task: TrainTask):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DeepSpeedPlugin, DistributedDataParallelKwargs

    AcceleratorState._reset_state(reset_partial_state=True)  # several runs in one process
    GradientState._reset_state()
    tcfg = run.train
    if tcfg.tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    kwargs: dict[str, Any] = {
        "gradient_accumulation_steps": tcfg.grad_accum,
        "mixed_precision": "bf16" if tcfg.bf16 else "no",
        # Losses absent from a step (cross-view off, no grounding sample) leave parameters unused.
        "kwargs_handlers": [DistributedDataParallelKwargs(find_unused_parameters=True)],
    }
    if tcfg.deepspeed is not None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        ds = resolve_deepspeed_config(
            load_deepspeed_config(tcfg.deepspeed), run, world, task.hidden_size
        )
        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(hf_ds_config=ds)
    else:
        # Without cpu=True accelerate ignores torchrun's variables on a CPU-only machine and
        # every process trains alone; with it, they form a gloo group (MULTI_CPU).
        kwargs["cpu"] = not torch.cuda.is_available()
    return Accelerator(**kwargs)


def resolve_deepspeed_config(ds: dict, run: RunConfig, world_size: int, hidden_size: int) -> dict:
    """Replace every "auto" of a DeepSpeed config with the run's values (so nothing depends on
    accelerate guessing them from a dataloader or model.config). ValueError on a value that
    contradicts the run config."""
    tcfg = run.train
    ds = copy.deepcopy(ds)
    values = {
        "train_micro_batch_size_per_gpu": tcfg.micro_batch_size,
        "gradient_accumulation_steps": tcfg.grad_accum,
        "train_batch_size": tcfg.micro_batch_size * tcfg.grad_accum * world_size,
        "gradient_clipping": tcfg.max_grad_norm,
        "bf16.enabled": tcfg.bf16,
        "fp16.enabled": False,
        "optimizer.params.lr": tcfg.lr,
        "optimizer.params.betas": list(tcfg.adam_betas),
        "optimizer.params.eps": tcfg.adam_eps,
        "optimizer.params.weight_decay": tcfg.weight_decay,
        "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
        "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
    }
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = ds
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        batch_keys = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps")
        if node[leaf] == "auto":
            node[leaf] = value
        elif dotted in batch_keys and node[leaf] != value:
            raise ValueError(f"DeepSpeed {dotted}={node[leaf]} contradicts the run's {value}")
    if "scheduler" in ds:
        raise ValueError("DeepSpeed config must not define a scheduler: the run's cosine is used")
    if "optimizer" not in ds:
        raise ValueError("DeepSpeed config must define the AdamW optimizer (with torch_adam)")
    leftover = _autos(ds)
    if leftover:
        raise ValueError(f"DeepSpeed config has 'auto' values the trainer cannot fill: {leftover}")
    return ds


def _autos(node, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [a for k, v in node.items() for a in _autos(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if node == "auto" else []


def _prepare(accelerator, run: RunConfig, model):
    """AdamW + cosine-with-warm-up; DeepSpeed builds AdamW from its config (torch_adam)."""
    from accelerate.utils import DummyOptim, DummyScheduler
    from transformers import get_cosine_schedule_with_warmup

    tcfg = run.train
    params = [p for p in model.parameters() if p.requires_grad]
    schedules = []

    def cosine(optimizer):
        schedules.append(
            get_cosine_schedule_with_warmup(optimizer, tcfg.warmup_steps, tcfg.max_steps)
        )
        return schedules[-1]

    if tcfg.deepspeed is not None:
        optimizer = DummyOptim(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        scheduler = DummyScheduler(optimizer, lr_scheduler_callable=cosine)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        return model, optimizer, scheduler
    optimizer = torch.optim.AdamW(
        params, lr=tcfg.lr, betas=tcfg.adam_betas, eps=tcfg.adam_eps, weight_decay=tcfg.weight_decay
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    # Not prepared: accelerate would step it once per process; we step it once per update.
    scheduler = cosine(optimizer)
    accelerator.register_for_checkpointing(scheduler)
    return model, optimizer, scheduler


@contextmanager
def _distributed_env(deepspeed: bool) -> Iterator[None]:
    """DeepSpeed needs launcher variables even for one process (else it asks for mpi4py): set
    them when no launcher (torchrun) did. They and the process group stay for the life of the
    process, so later runs in it reuse the group (DeepSpeed caches it). The ACCELERATE_*
    variables accelerate sets (e.g. ACCELERATE_USE_DEEPSPEED) are undone afterwards, so a later
    plain run in the same process does not silently become a DeepSpeed one."""
    before = {k: v for k, v in os.environ.items() if k.startswith("ACCELERATE_")}
    if deepspeed and "RANK" not in os.environ:
        os.environ.update(
            RANK="0",
            WORLD_SIZE="1",
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(_free_port()),
        )
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("ACCELERATE_")]:
            if key not in before:
                del os.environ[key]
        os.environ.update(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _progress(enabled: bool, start: int, total: int):
    """Rich progress bar on the main process; yields advance(record)."""
    if not enabled:
        yield lambda record: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[losses]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        job = bar.add_task("train", total=total, completed=start, losses="")

        def advance(record: dict) -> None:
            shown = " ".join(f"{k}={record[k]:.3f}" for k in LOSS_KEYS if record.get(k) is not None)
            bar.update(job, advance=1, losses=shown)

        yield advance
