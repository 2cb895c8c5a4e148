"""Scene preparation on the local and the ray engine: scenes/s, Ray start-up, per-unit overhead
(run by hand).

    uv run python benchmarks/bench_engines.py [--scenes 16] [--views 8] [--full-size]

Builds shards (``build_shards``: the per-scene unit prepares the clip and writes its cache tar)
of ``--scenes`` scene folders, copies of two ``make_demo`` rooms, with the ``local`` engine at
1 and 2 workers and the ``ray`` engine at 1 and 2 workers (one local Ray instance per worker
count, ``num_cpus`` = workers; its start-up timed apart). Each ray build runs twice: cold (new
worker processes import ross3d_data) and warm. Every build must give the same shard bytes.
Then the bare per-unit overhead of each engine: 200 no-op units. Prints markdown tables for
docs/benchmarks.md and the projection inputs (CPU seconds per scene).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per unit on every engine
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # as core.engines.import_ray

import argparse
import hashlib
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from ross3d_data.core.engines import EngineConfig, run_units
from ross3d_data.shards.build import ShardConfig, build_shards
from ross3d_data.shards.sample import SampleConfig
from ross3d_data.synthetic.scenes import make_demo

NOOP_UNITS = 200


def noop(x: int) -> int:
    return x


def make_scenes(root: Path, n: int, full_size: bool) -> Path:
    """``n`` scene folders under ``root/scenes``: copies of two demo rooms (no .sens)."""
    demos = make_demo(root / "demo", n_scenes=2, seed=0, full_size=full_size)
    scenes = root / "scenes"
    for i in range(n):
        shutil.copytree(demos[i % 2], scenes / f"bench{i:04d}_00",
                        ignore=shutil.ignore_patterns("*.sens"))  # fmt: skip
    return scenes


def shard_digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.glob("shard-*.tar")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build(scenes: Path, out: Path, views: int, engine: str, workers: int) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = ShardConfig(scenes=(scenes,), out=out, sample=SampleConfig(views=views),
                      engine=engine, workers=workers)  # fmt: skip
    t0 = time.perf_counter()
    summary = build_shards(cfg, Console(file=open(os.devnull, "w")))  # noqa: SIM115
    wall = time.perf_counter() - t0
    assert not summary.failed, summary.failed
    unit_s = [r.seconds for r in summary.jobs.results]
    return wall, {"digest": shard_digest(out), "unit_median": statistics.median(unit_s),
                  "unit_sum": sum(unit_s)}  # fmt: skip


def noop_overhead(engine: str, workers: int) -> float:
    """Seconds per no-op unit through the engine (submission, transfer, result)."""
    cfg = EngineConfig(engine, workers)
    t0 = time.perf_counter()
    n = sum(1 for _ in run_units(noop, [(k, k) for k in range(NOOP_UNITS)], cfg))
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--full-size", action="store_true", help="ScanNet-size demo frames")
    args = ap.parse_args()
    import ray

    root = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    scenes = make_scenes(root, args.scenes, args.full_size)
    rows, digests, overhead = [], set(), {}
    n = args.scenes
    for workers in (1, 2):
        wall, info = build(scenes, root / "out", args.views, "local", workers)
        digests.add(info["digest"])
        rows.append(("local", workers, "-", wall, n / wall, info["unit_median"]))
        overhead[("local", workers)] = noop_overhead("local", workers)
    for workers in (1, 2):
        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 logging_level="warning")  # fmt: skip
        start = time.perf_counter() - t0
        for run in ("cold", "warm"):
            wall, info = build(scenes, root / "out", args.views, "ray", workers)
            digests.add(info["digest"])
            rows.append((f"ray ({run})", workers, f"{start:.1f} s", wall, n / wall,
                         info["unit_median"]))  # fmt: skip
        overhead[("ray", workers)] = noop_overhead("ray", workers)
        ray.shutdown()
    shutil.rmtree(root, ignore_errors=True)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs; {n} scenes, "
          f"{args.views} views, full_size={args.full_size}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"same shard bytes on every engine and worker count: {len(digests) == 1} {digests}\n")
    print("| engine | workers | Ray start-up | wall | scenes/s | unit median (s/scene) |")
    print("|---|---|---|---|---|---|")
    for engine, w, start, wall, rate, med in rows:
        print(f"| {engine} | {w} | {start} | {wall:.1f} s | {rate:.2f} | {med:.2f} |")
    print("\n| engine | workers | overhead per no-op unit |\n|---|---|---|")
    for (engine, w), sec in overhead.items():
        print(f"| {engine} | {w} | {sec * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
