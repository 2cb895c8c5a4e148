"""The training loop: plain (one process or torch DDP: gloo on CPU / nccl on CUDA) or DeepSpeed
ZeRO-2/3, both through `training.engine` (the only modules touching torch.distributed and
DeepSpeed). Collation runs in a background thread (`training.prefetch`). What is trained is a
`TrainTask` (the Ross3D task lives in `training.task`; tests plug in a toy one), so the loop is
the same for the tiny CPU model and the 7B recipe.

Exactness: every micro-batch reseeds torch's RNG from (seed, global micro-batch index) and the
data order depends only on (seed, epoch), so a resumed run and a run split over more processes
(with proportionally less accumulation) compute the same losses. A micro-batch that fails to
collate on any rank is skipped by every rank (the data position, saved in the checkpoint, moves
past it), so resume stays exact.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ross3d_model.configuration.run import RunConfig
from ross3d_model.training import checkpointing as ckpt
from ross3d_model.training.data import MicroBatch, micro_batches
from ross3d_model.training.engine import make_engine
from ross3d_model.training.metrics import (
    CURVE_FILE,
    LOSS_KEYS,
    MetricsLog,
    plot_loss_curves,
    read_metrics,
)
from ross3d_model.training.prefetch import Collated, Prefetcher, collate_one
from ross3d_model.weights.model_folder import EXPORT_DIR

NAMED = ("lm", "cross_view", "bev", "grounding")


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
    def data_fingerprint(self) -> str: ...  # changes when the training data changes


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
    skipped_micro_batches: int  # for data errors, over the whole run (resumed part included)
    is_main: bool  # this process is rank 0 (the one that wrote the metrics and the export)


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
    _launcher_env(run.train.deepspeed is not None)
    return _train(run, task, output_dir, log, resume, progress)


def _train(run, task, output_dir, log, resume, progress) -> TrainResult:
    tcfg = run.train
    torch.manual_seed(tcfg.seed)  # same initial weights on every process
    model = task.build_model()  # before any engine: never under ZeRO-3's zero.Init
    model.train()  # pretrained parts load in eval mode, which also disables checkpointing
    if tcfg.gradient_checkpointing:
        task.enable_gradient_checkpointing(model)
    engine = make_engine(run, model, task.hidden_size)
    layout = {
        "num_processes": engine.world_size,
        "examples_per_step": tcfg.micro_batch_size * tcfg.grad_accum * engine.world_size,
        "data_fingerprint": task.data_fingerprint(),
    }
    start, position = _resume(engine, output_dir, resume, layout)
    if engine.is_main:
        run.save(output_dir / ckpt.RUN_CONFIG_FILE)  # where `export` finds it
        log.truncate_after(start)
    engine.barrier()
    stream = micro_batches(
        task.epoch_items,
        micro_batch_size=tcfg.micro_batch_size,
        world_size=engine.world_size,
        rank=engine.rank,
        start=position.next_micro_batch,
    )
    prefetch = Prefetcher(stream, lambda m: collate_one(task, m, _seed(tcfg, m)), tcfg.prefetch)
    try:
        where = (output_dir, log, layout)
        totals, elapsed = _loop(engine, task, prefetch, position, run, where, progress)
    finally:
        prefetch.close()
    return _finish(engine, task, run, output_dir, log, totals, elapsed, position)


def _loop(engine, task, prefetch, position, run, where, progress):
    """The optimiser steps from position.step on; where = (output_dir, metrics log, layout)."""
    output_dir, log, layout = where
    tcfg = run.train
    totals = {"samples": 0, "tokens": 0}
    start = position.step
    began, cpu_began = time.perf_counter(), time.process_time()
    with _progress(progress and engine.is_main, start, tcfg.max_steps) as advance:
        for step in range(start, tcfg.max_steps):
            record = _train_step(engine, task, prefetch, position, step, run)
            totals["samples"] += record["samples"]
            totals["tokens"] += record["tokens"]
            record["elapsed_s"] = round(time.perf_counter() - began, 3)
            record["cpu_s"] = round(time.process_time() - cpu_began, 3)  # this process
            if engine.is_main and ((step + 1) % tcfg.log_every == 0 or step == 0):
                log.append(record)
            if (step + 1) % tcfg.save_every == 0 or step + 1 == tcfg.max_steps:
                _save_checkpoint(engine, output_dir, position, run, layout)
            advance(record)
    return totals, max(time.perf_counter() - began, 1e-9)


def _finish(engine, task, run, output_dir, log, totals, elapsed, position) -> TrainResult:
    export_dir = output_dir / EXPORT_DIR
    state_dict = engine.full_state_dict()  # collective under ZeRO-3
    curve = output_dir / CURVE_FILE
    if engine.is_main:
        task.export(engine.module, state_dict, export_dir)
        plot_loss_curves(read_metrics(log.path), curve, title=f"{run.model} ({output_dir.name})")
    engine.barrier()
    records = read_metrics(log.path) if log.path.exists() else []
    return TrainResult(
        output_dir,
        run.train.max_steps,
        records,
        log.path,
        curve,
        export_dir,
        totals["samples"] / elapsed,
        totals["tokens"] / elapsed,
        position.skipped,
        engine.is_main,
    )


@dataclass
class Position:
    """Where the data stream stands: optimiser steps done, the global index of the next
    micro-batch to read (skipped micro-batches move it on) and how many were skipped."""

    step: int
    next_micro_batch: int
    skipped: int = 0


def _seed(tcfg, micro: MicroBatch) -> int:
    return tcfg.seed * 1_000_003 + micro.index


def _next_batch(engine, prefetch, position: Position, run) -> Collated:
    """This rank's next micro-batch that collated on every rank; one whose collate raised on
    any rank is skipped by all (one all-reduce of a flag), counted, and fatal once more than
    train.max_bad_fraction of the run's micro-batches were skipped."""
    tcfg = run.train
    limit = tcfg.max_bad_fraction * tcfg.max_steps * tcfg.grad_accum * engine.world_size
    while True:
        got = next(prefetch)
        position.next_micro_batch = got.micro.index - engine.rank + engine.world_size
        if not engine.any_rank(got.error is not None):
            return got
        position.skipped += engine.world_size  # every rank drops its micro-batch of the slot
        if got.error is not None:
            print(f"rank {engine.rank}: skipped micro-batch {got.micro.index}: {got.error}")
        if position.skipped > limit:
            raise ValueError(
                f"{position.skipped} micro-batches skipped for data errors, more than "
                f"train.max_bad_fraction={tcfg.max_bad_fraction} of the run's "
                f"{tcfg.max_steps * tcfg.grad_accum * engine.world_size}; last: {got.error}"
            )


def _train_step(engine, task, prefetch, position: Position, step: int, run) -> dict:
    """One optimiser step over grad_accum micro-batches; returns the step's metrics record.
    Losses are summed on the device and copied to the host once, after the all-reduce."""
    tcfg = run.train
    cross_view = task.cross_view_active(step)
    sums = torch.zeros(2 * len(LOSS_KEYS) + 1, dtype=torch.float64, device=engine.device)
    lr = engine.lr()  # the rate this step's update uses
    waited, skipped = prefetch.waited_s, position.skipped
    samples = tokens = 0
    for _ in range(tcfg.grad_accum):
        got = _next_batch(engine, prefetch, position, run)
        torch.manual_seed(_seed(tcfg, got.micro))  # model noise / masks: same on resume
        batch = task.to_device(got.batch, engine.device)
        with engine.sync_context():
            with engine.autocast():
                losses = task.losses(engine.model, batch, cross_view)
            engine.backward(losses["total"])
        engine.step()
        _accumulate(sums, losses)
        samples, tokens = samples + len(got.micro.items), tokens + got.tokens
    host = torch.tensor([samples, tokens, prefetch.waited_s - waited], dtype=torch.float64)
    sums[-1] = engine.last_grad_norm  # the same on every rank
    sums = engine.all_reduce_sum(sums).cpu().tolist()  # the step's one device-to-host copy
    host = engine.all_reduce_sum(host, cpu=True)
    position.step = step + 1
    record = _record(sums, step, lr, cross_view, got.micro.epoch)
    record.update(
        grad_norm=sums[-1] / engine.world_size,
        samples=int(host[0]),
        tokens=int(host[1]),
        data_wait_s=round(float(host[2]) / engine.world_size, 4),  # mean over processes
        skipped_micro_batches=position.skipped - skipped,
    )
    return record


def _accumulate(sums: torch.Tensor, losses: dict) -> None:
    named = {"loss": losses["total"], **{k: losses.get(k) for k in NAMED}}
    for i, key in enumerate(LOSS_KEYS):
        value = named[key]
        if value is not None:
            sums[2 * i] += value.detach().double()
            sums[2 * i + 1] += 1


def _record(sums: list[float], step: int, lr: float, cross_view: bool, epoch: int) -> dict:
    """Each loss = mean over the micro-batches (all processes) that computed it, else null."""
    record: dict[str, Any] = {"step": step + 1}
    for i, key in enumerate(LOSS_KEYS):
        count = sums[2 * i + 1]
        record[key] = sums[2 * i] / count if count else None
    record.update(lr=lr, cross_view_active=cross_view, epoch=epoch)
    return record


def _resume(engine, output_dir: Path, resume: bool, layout: dict) -> tuple[int, Position]:
    """(first step, data position) from the newest complete checkpoint, else a fresh start."""
    found = ckpt.latest_checkpoint(output_dir) if resume else None
    if found is None:
        return 0, Position(0, 0)
    state = ckpt.read_state(found[1])
    _check_layout(state, found[1], layout)
    engine.load(found[1])
    position = Position(state["step"], state["next_micro_batch"], state["skipped_micro_batches"])
    return position.step, position


def _check_layout(state: dict, path: Path, layout: dict) -> None:
    """Exact resume needs the same processes, examples per optimiser step and shards."""
    meaning = {
        "num_processes": "processes (world size)",
        "examples_per_step": "examples per step (micro-batch x accumulation x processes)",
        "data_fingerprint": "shard-manifest fingerprint (the shards or the data settings changed)",
    }
    for key, what in meaning.items():
        if state.get(key) != layout[key]:
            raise ValueError(
                f"{path}: saved with {state.get(key)} {what}, this run has {layout[key]}; "
                f"resume with the same layout and data"
            )


def _save_checkpoint(engine, output_dir: Path, position: Position, run, layout: dict) -> None:
    path = ckpt.checkpoint_dir(output_dir, position.step)
    engine.save(path)  # collective: every rank writes its part, then a barrier
    if engine.is_main:
        state = {
            "step": position.step,
            **layout,
            "next_micro_batch": position.next_micro_batch,
            "skipped_micro_batches": position.skipped,
        }
        ckpt.write_state(path, state)
        ckpt.mark_complete(path)
        ckpt.prune(output_dir, run.train.keep_checkpoints)
    engine.barrier()


def _launcher_env(deepspeed: bool) -> None:
    """DeepSpeed needs a process group even for one process: give it launcher variables when
    no launcher (torchrun) did. They and the group stay for the life of the process, so later
    runs in it reuse the group."""
    if deepspeed and "RANK" not in os.environ:
        os.environ.update(
            RANK="0",
            WORLD_SIZE="1",
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(_free_port()),
        )


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
