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

import dataclasses
import os
import signal
import socket
import sys
import threading
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
from ross3d_model.training.ranks import Ranks, join_process_group, world_size_from_env
from ross3d_model.weights.model_folder import EXPORT_DIR

NAMED = ("lm", "cross_view", "bev", "grounding")


class TrainTask(Protocol):
    """What the loop needs from a model + data pairing."""

    hidden_size: int  # fills DeepSpeed's hidden-size-based "auto" buckets

    def build_model(self, dtype: torch.dtype | None = None) -> torch.nn.Module: ...
    def epoch_items(self, epoch: int) -> Iterable[Any]: ...  # deterministic order per epoch
    def collate(self, items: list[Any], seed: int) -> Any: ...  # decode + batch
    def to_device(self, batch: Any, device: torch.device) -> Any: ...
    def losses(self, model, batch: Any, cross_view: bool) -> dict[str, torch.Tensor | None]: ...
    def cross_view_active(self, step: int) -> bool: ...
    def count_tokens(self, batch: Any) -> int: ...
    def enable_gradient_checkpointing(self, model: torch.nn.Module) -> None: ...
    def export(self, model, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None: ...
    def data_fingerprint(self) -> str: ...  # changes when the training data changes
    def pretrained_files(self) -> dict[str, str]: ...  # source -> what this node sees of it


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
    stopped_by: str | None = None  # a signal's name: checkpointed at `steps` and stopped early


def train(
    run: RunConfig,
    task: TrainTask,
    output_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    allow_schedule_change: bool = False,
) -> TrainResult:
    """Train `task` for run.train.max_steps optimiser steps, logging to OUTPUT_DIR/metrics.jsonl,
    checkpointing every run.train.save_every steps (and every save_every_minutes) and exporting
    the weights to OUTPUT_DIR/model.

    Before the model is built: the accumulation is derived for this world size
    (`TrainConfig.for_world`), every rank checks that it sees rank 0's run folder, shards and
    pretrained files (`training.ranks`), and a resume is agreed and checked (same layout and
    data; the same max_steps unless `allow_schedule_change`). resume=True continues from the
    newest complete checkpoint (a fresh start if there is none); resume=False refuses an
    output dir that already holds a run. SIGTERM / SIGUSR1 finish the step, checkpoint and
    return (`stopped_by`), so a requeued job resumes."""
    output_dir = Path(output_dir)
    run = dataclasses.replace(run, train=run.train.for_world(world_size_from_env()))
    tcfg = run.train
    output_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(output_dir)
    _launcher_env(tcfg.deepspeed is not None)
    join_process_group(tcfg.collective_timeout_s, tcfg.deepspeed is not None)
    ranks = Ranks()
    held = not resume and (log.path.exists() or ckpt.list_checkpoints(output_dir))
    ranks.fail_together(
        f"{output_dir}: already holds a run; pass --resume or use a new folder" if held else None
    )
    ranks.check_run_folder(output_dir)
    layout = {
        "num_processes": ranks.world_size,
        "examples_per_step": tcfg.global_batch_size,
        "data_fingerprint": task.data_fingerprint(),
    }
    ranks.same_as_rank0(
        "shard data (manifest fingerprint)", layout["data_fingerprint"],
        "every node must read the same shard folder (a shared filesystem or identical copies)",
    )  # fmt: skip
    ranks.same_as_rank0(
        "set of pretrained files", task.pretrained_files(),
        "every node needs the same model cache and pretrained files",
    )  # fmt: skip
    found = ranks.agree_resume(output_dir, resume, ckpt.latest_checkpoint)
    state = None if found is None else _resume_state(found[1], layout, tcfg, allow_schedule_change)
    if ranks.rank == 0:
        print(f"train: {tcfg.batch_line(ranks.world_size)}, {tcfg.max_steps} steps", flush=True)
    return _train(run, task, output_dir, log, (found, state, layout), progress)


def _train(run, task, output_dir, log, resumed, progress) -> TrainResult:
    tcfg = run.train
    found, state, layout = resumed
    torch.manual_seed(tcfg.seed)  # same initial weights on every process
    model = task.build_model(build_dtype(tcfg))  # before any engine: never under zero.Init
    model.train()  # pretrained parts load in eval mode, which also disables checkpointing
    if tcfg.gradient_checkpointing:
        task.enable_gradient_checkpointing(model)
    engine = make_engine(run, model, task.hidden_size)
    position = Position(0, 0)
    if found is not None:
        engine.load(found[1])
        position = Position(
            state["step"], state["next_micro_batch"], state["skipped_micro_batches"]
        )
    start = position.step
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
        with _StopSignals() as signals:
            totals, elapsed = _loop(engine, task, prefetch, position, run, where, progress, signals)
    finally:
        prefetch.close()
    return _finish(engine, task, run, output_dir, log, (totals, elapsed), position)


def build_dtype(tcfg) -> torch.dtype | None:
    """The dtype the model is built in: bf16 when DeepSpeed trains in bf16 (it casts the
    parameters to bf16 anyway and keeps its fp32 master copy from those; fp32 buffers stay
    fp32), else None (fp32: plain training autocasts, its weights stay fp32)."""
    return torch.bfloat16 if tcfg.bf16 and tcfg.deepspeed is not None else None


def _loop(engine, task, prefetch, position, run, where, progress, signals):
    """The optimiser steps from position.step on; where = (output_dir, metrics log, layout).
    Checkpoints every save_every steps, at the end, every save_every_minutes (rank 0's clock)
    and when a stop signal reached any rank (then stops: totals["stopped_by"])."""
    output_dir, log, layout = where
    tcfg = run.train
    totals = {"samples": 0, "tokens": 0, "stopped_by": None}
    start = position.step
    began, cpu_began = time.perf_counter(), time.process_time()
    saved = time.monotonic()
    with _progress(progress and engine.is_main, start, tcfg.max_steps) as advance:
        for step in range(start, tcfg.max_steps):
            record = _train_step(engine, task, prefetch, position, step, run)
            totals["samples"] += record["samples"]
            totals["tokens"] += record["tokens"]
            record["elapsed_s"] = round(time.perf_counter() - began, 3)
            record["cpu_s"] = round(time.process_time() - cpu_began, 3)  # this process
            if engine.is_main and ((step + 1) % tcfg.log_every == 0 or step == 0):
                log.append(record)
            minutes = tcfg.save_every_minutes
            due = (
                engine.is_main and minutes is not None and time.monotonic() - saved >= 60 * minutes
            )
            stop, due = engine.any_rank_each(signals.received is not None, due)
            if stop or due or (step + 1) % tcfg.save_every == 0 or step + 1 == tcfg.max_steps:
                _save_checkpoint(engine, output_dir, position, run, layout)
                saved = time.monotonic()
            advance(record)
            if stop:
                totals["stopped_by"] = signals.received or "a signal to another rank"
                break
    return totals, max(time.perf_counter() - began, 1e-9)


def _finish(engine, task, run, output_dir, log, timing, position) -> TrainResult:
    totals, elapsed = timing
    export_dir = output_dir / EXPORT_DIR
    stopped = totals["stopped_by"]
    state_dict = None if stopped else engine.full_state_dict()  # collective under ZeRO-3
    curve = output_dir / CURVE_FILE
    if engine.is_main:
        if not stopped:
            task.export(engine.module, state_dict, export_dir)
        plot_loss_curves(read_metrics(log.path), curve, title=f"{run.model} ({output_dir.name})")
    engine.barrier()
    records = read_metrics(log.path) if log.path.exists() else []
    return TrainResult(
        output_dir,
        position.step,
        records,
        log.path,
        curve,
        export_dir,
        totals["samples"] / elapsed,
        totals["tokens"] / elapsed,
        position.skipped,
        engine.is_main,
        stopped,
    )


class _StopSignals:
    """SIGTERM / SIGUSR1 (a scheduler's preemption warning) set `received` instead of ending
    the process; the loop finishes the step, checkpoints and stops. Installed only in the main
    thread (Python's rule); the previous handlers come back on exit."""

    NAMES = ("SIGTERM", "SIGUSR1")

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in self.NAMES:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


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


def _resume_state(path: Path, layout: dict, tcfg, allow_schedule_change: bool) -> dict:
    """The trainer state of checkpoint `path`, refused (before the model is built) when the run
    changed what an exact resume needs, or max_steps (the cosine schedule) without
    `allow_schedule_change`."""
    state = ckpt.read_state(path)
    _check_layout(state, path, layout)
    saved = state.get("max_steps")  # absent in checkpoints of older runs
    if saved is not None and saved != tcfg.max_steps and not allow_schedule_change:
        raise ValueError(
            f"{path}: saved by a run of max_steps {saved}, this run has {tcfg.max_steps}: the "
            f"warm-up and cosine decay would change mid-run; resume with --max-steps {saved}, "
            "or pass --allow-schedule-change"
        )
    return state


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
            "max_steps": run.train.max_steps,
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


PLAIN_EVERY_S = 30.0  # plain progress lines when stdout is not a terminal (a batch job's log)


def _plain_progress(start: int, total: int, every_s: float = PLAIN_EVERY_S, out=None):
    """advance(record) printing one plain line (step, losses, lr, s/step, ETA) at the first
    step, the last one and at most every `every_s` seconds in between."""
    out = out or sys.stdout
    began, state = time.monotonic(), {"printed": -float("inf"), "done": start}

    def advance(record: dict) -> None:
        state["done"] += 1
        now = time.monotonic()
        first, last = state["done"] == start + 1, state["done"] == total
        if not (first or last or now - state["printed"] >= every_s):
            return
        state["printed"] = now
        per_step = (now - began) / (state["done"] - start)
        losses = " ".join(f"{k}={record[k]:.4f}" for k in LOSS_KEYS if record.get(k) is not None)
        eta = int(per_step * (total - state["done"]))
        print(
            f"step {state['done']}/{total} {losses} lr={record['lr']:.3g} "
            f"{per_step:.2f} s/step eta {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}",
            file=out,
            flush=True,
        )

    return advance


@contextmanager
def _progress(enabled: bool, start: int, total: int):
    """Rich progress bar on the main process when stdout is a terminal, plain periodic lines
    when it is not (a scheduler's log file); yields advance(record)."""
    if not enabled:
        yield lambda record: None
        return
    if not sys.stdout.isatty():
        yield _plain_progress(start, total)
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
