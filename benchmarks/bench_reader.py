"""Shard reader and training data wait on frames of real ScanNet size.

    uv run python benchmarks/bench_reader.py [--scenes 2] [--frames 64] [--work DIR]
        [--examples 48] [--steps 6] [--train-views 8] [--models tiny mid] [--prefetch N]

Data, all through the real pipeline: ``make_demo(full_size=True)`` writes synthetic rooms whose
``.sens`` streams hold 1296x968 colour and 640x480 depth frames (ScanNet's sizes), exported to
posed folders as ScanNet's are; the demo benchmark annotations become instructions of all five
tasks; ``build-shards`` makes 32-view clips (the recipe) and, for the training runs,
``--train-views``-view clips (the tiny model's 4,096-token context holds at most 18 views).

1. Reader, one thread (``cv2``/torch single-threaded, process CPU time = one core): examples
   per CPU-second for ``ShardReader.sample`` (tar member reads) and for ``.clip`` +
   ``clip_to_tensors`` (JPEG/PNG decode) in a random example order with the LRU off (the
   training pattern: consecutive examples rarely share a clip), and with the LRU on in
   (clip, id) order (the predict pattern).
2. Collate (the tiny task's ``collate``: decode + tokenise + stack) examples per CPU-second.
3. Training on CPU (tiny and mid model configs, the trainer's prefetch as configured): the
   fraction of each optimiser step the loop waited for data (``data_wait_s`` / step wall time,
   first step excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import random
import tempfile
import time
from pathlib import Path


def build_data(work: Path, scenes: int, frames: int, train_views: int) -> dict[str, Path]:
    """Full-size demo scenes, their instructions and two shard folders (reused if present)."""
    from rich.console import Console
    from ross3d_data.shards.build import ShardConfig, build_shards
    from ross3d_data.shards.sample import SampleConfig
    from ross3d_data.synthetic.annotations import write_demo_annotations
    from ross3d_data.synthetic.scenes import make_demo
    from ross3d_model.demo import _instructions

    done = work / "data.json"
    if done.is_file():
        return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
    t0 = time.perf_counter()
    dirs = make_demo(work / "scenes", n_scenes=scenes, n_frames=frames, annotations=False,
                     full_size=True)  # fmt: skip
    print(f"make-demo --full-size: {scenes} scenes x {frames} frames in "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    ann = write_demo_annotations(dirs, work / "annotations")
    inst = tuple(_instructions(ann, work / "instructions"))
    out = {}
    for name, views in (("shards32", 32), ("shards_train", train_views)):
        t0 = time.perf_counter()
        build_shards(ShardConfig(scenes=(work / "scenes",), out=work / name, instructions=inst,
                                 sample=SampleConfig(views=views)), Console(quiet=True))  # fmt: skip
        print(f"build-shards {views} views: {time.perf_counter() - t0:.0f} s")
        out[name] = work / name
    done.write_text(json.dumps({k: str(v) for k, v in out.items()}))
    return out


def _rate(fn, items) -> tuple[float, float]:
    """(items per CPU-second, items per wall-second) of fn over items."""
    c0, t0 = time.process_time(), time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.process_time() - c0), len(items) / (time.perf_counter() - t0)


def bench_reader(shards: Path, n: int) -> None:
    from ross3d_data.shards.loader import clip_to_tensors
    from ross3d_data.shards.reader import ShardReader

    t0 = time.perf_counter()
    cold = ShardReader(shards, cache_clips=0)
    print(f"open (tar member index of {len(cold.keys)} clips): {time.perf_counter() - t0:.3f} s")
    examples = cold.examples("train")
    rng = random.Random(0)
    shuffled = [rng.choice(examples) for _ in range(n)]
    size = sum(len(v) for k, v in cold.sample(shuffled[0][0]).items() if k != "__key__")
    print(f"{len(examples)} train examples, {size / 1e6:.1f} MB encoded per 32-view clip")
    cpu, wall = _rate(lambda ex: cold.sample(ex[0]), shuffled)
    print(f"read members only:        {cpu:7.1f} examples/CPU-s ({wall:.1f}/s wall)")
    cpu, wall = _rate(lambda ex: clip_to_tensors(cold.clip(ex[0])), shuffled)
    print(f"random order, no LRU:     {cpu:7.1f} examples/CPU-s ({wall:.1f}/s wall)  <- training")
    warm = ShardReader(shards, cache_clips=2)
    in_order = examples[:n]
    cpu, wall = _rate(lambda ex: clip_to_tensors(warm.clip(ex[0])), in_order)
    print(f"(clip, id) order, LRU 2:  {cpu:7.1f} examples/CPU-s ({wall:.1f}/s wall)  <- predict")


def bench_collate(shards: Path, n: int) -> None:
    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import DataConfig
    from ross3d_model.training.task import Ross3DTask

    task = Ross3DTask(load_config("tiny"), shards, DataConfig(), global_batch=1)
    items = task.epoch_items(0)[:n]
    task.collate(items[:1], seed=0)  # tokenizer load not timed
    cpu, wall = _rate(lambda it: task.collate([it], seed=0), items)
    print(f"tiny collate (decode + tokenise + stack): {cpu:.1f} examples/CPU-s ({wall:.1f}/s wall)")


def bench_wait(shards: Path, model: str, steps: int, work: Path, prefetch: int | None) -> None:
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.training.task import train_from_config

    run = load_run_config("tiny")
    run.model = model
    run.train = dataclasses.replace(run.train, max_steps=steps, micro_batch_size=1, grad_accum=2,
                                    save_every=10**6)  # fmt: skip
    if prefetch is not None:
        run.train = dataclasses.replace(run.train, prefetch=prefetch)
    out = Path(tempfile.mkdtemp(prefix=f"wait_{model}_", dir=work))
    result = train_from_config(run, out, shards=shards, progress=False)
    recs = result.records
    if "data_wait_s" not in recs[0]:
        raise SystemExit("the trainer records no data_wait_s: cannot measure the data wait")
    step_s = [b["elapsed_s"] - a["elapsed_s"] for a, b in itertools.pairwise(recs)]
    waits = [r["data_wait_s"] for r in recs[1:]]
    frac = sum(waits) / sum(step_s)
    print(f"{model} (prefetch {run.train.prefetch}): {len(step_s)} timed steps of 2 micro-batches, {sum(step_s) / len(step_s):.2f} "
          f"s/step, data wait {sum(waits) / len(waits):.3f} s/step = {100 * frac:.1f} % "
          f"(per step: {', '.join(f'{w:.2f}' for w in waits)})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--frames", type=int, default=64, help="raw frames per scene (every 2nd kept)")
    ap.add_argument("--work", type=Path, default=None, help="reuse a folder between runs")
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--train-views", type=int, default=8)
    ap.add_argument("--models", nargs="*", default=["tiny", "mid"])
    ap.add_argument(
        "--prefetch", type=int, default=None, help="override train.prefetch (0: inline)"
    )
    ap.add_argument("--skip-reader", action="store_true", help="only the training runs")
    args = ap.parse_args()

    import cv2
    import torch

    threads = torch.get_num_threads()
    cv2.setNumThreads(1)  # per-core figures for the reader and collate
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_reader_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; work dir {work}")
    data = build_data(work, args.scenes, args.frames, args.train_views)
    if not args.skip_reader:
        bench_reader(data["shards32"], args.examples)
        bench_collate(data["shards_train"], args.examples)
    torch.set_num_threads(threads)  # training as it runs by default
    print(f"training with {threads} torch threads")
    for model in args.models:
        bench_wait(data["shards_train"], model, args.steps, work, args.prefetch)


if __name__ == "__main__":
    main()
