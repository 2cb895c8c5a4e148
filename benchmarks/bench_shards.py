"""Benchmark build-shards (scenes per minute) and the loader (samples per second).

Run by hand: ``uv run python benchmarks/bench_shards.py [--scenes 4] [--views 32]``.
Uses demo scenes (``make_demo``; 320x240 colour, 160x120 depth) with their demo annotations
converted to instructions. Loader samples are (clip, instruction) examples of ``views`` frames,
decoded from JPEG/PNG into the contract's tensors; target >= 20 samples/s per core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ross3d_data.instructions import ConvertConfig, convert_instructions
from ross3d_data.shards.build import ShardConfig, build_shards
from ross3d_data.shards.loader import make_loader
from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sample import SampleConfig
from ross3d_data.synthetic.scenes import make_demo


def _instructions(ann: Path, out: Path) -> Path:
    lines = []
    for task in ("scanqa", "scanrefer", "multi3drefer"):
        name = {"scanqa": "scanqa/ScanQA_v1.0_train.json",
                "scanrefer": "scanrefer/ScanRefer_filtered_train.json",
                "multi3drefer": "multi3drefer/multi3drefer_train.json"}[task]  # fmt: skip
        cfg = ConvertConfig(
            task=task,
            input=ann / name,
            split="train",
            out=out / f"{task}.jsonl",
            boxes_json=ann / "boxes.json",
        )
        lines += [json.dumps(i.to_dict()) + "\n" for i in convert_instructions(cfg).instructions]
    path = out / "train.jsonl"
    path.write_text("".join(lines))
    return path


def bench_build(scenes: Path, inst: Path, out: Path, views: int, workers: int, n: int) -> float:
    t0 = time.perf_counter()
    build_shards(ShardConfig(scenes=(scenes,), out=out, instructions=(inst,),
                             sample=SampleConfig(views=views), max_shard_bytes=1 << 20,
                             workers=workers))  # fmt: skip
    dt = time.perf_counter() - t0
    print(
        f"build-shards workers={workers}: {n} scenes in {dt:.1f} s = {60 * n / dt:.1f} scenes/min"
    )
    return dt


def bench_loader(shards: Path, workers: int, limit: int) -> float:
    # LRU off: every sample is decoded from its clip's members (no repeat of a decoded clip)
    loader = make_loader(ShardReader(shards, cache_clips=0), "train", num_workers=workers)
    it = iter(loader)
    next(it)  # worker start-up and first decode not timed
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for _ in it:
        n += 1
        if n >= limit:
            break
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    # with workers=0 all decoding happens here, so process CPU time gives samples per core
    per_core = f", {n / cpu:.1f} samples per CPU-second" if workers == 0 else ""
    print(f"loader workers={workers}: {n} samples in {dt:.2f} s = {n / dt:.1f} samples/s{per_core}")
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--views", type=int, default=32)
    ap.add_argument("--demo-dir", type=Path, default=None, help="reuse make_demo output")
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo = args.demo_dir or tmp / "demo"
        if not (demo / "annotations").is_dir():
            make_demo(demo, n_scenes=args.scenes)
        n = len([d for d in demo.iterdir() if d.name.startswith("demo")])
        inst = _instructions(demo / "annotations", tmp)
        bench_build(demo, inst, tmp / "s1", args.views, 1, n)
        bench_build(demo, inst, tmp / "s2", args.views, 2, n)
        for workers in (0, 1, 2):
            bench_loader(tmp / "s1", workers, args.samples)


if __name__ == "__main__":
    main()
