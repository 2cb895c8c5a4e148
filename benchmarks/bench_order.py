"""The training order at recipe size: scene mixing per optimiser step and the cost of an epoch order.

    uv run python benchmarks/bench_order.py [--scenes 562] [--global-batch 256]

Examples: the recipe's task counts (SQA3D 79,445, ScanQA 26,515, Scan2Cap 36,665, ScanRefer
36,665, Multi3DRefer 43,838 = 223,128; REFERENCE.md section 3) spread over ``--scenes`` scenes
with random per-scene weights (some scenes have many more instructions than others). Reports,
per optimiser step, the number of distinct scenes and the largest share one scene supplies, for
``epoch_order`` with and without ``group_by_task`` and for a plain uniform permutation, plus the
time to compute one epoch's order.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import numpy as np
from ross3d_data.shards.sampling import TASK_GROUPS, epoch_order

TASK_COUNTS = {"sqa3d": 79_445, "scanqa": 26_515, "scan2cap": 36_665, "scanrefer": 36_665,
               "multi3drefer": 43_838}  # fmt: skip


def recipe_examples(n_scenes: int, seed: int = 0) -> tuple[list[int], list[str]]:
    """(scene index, task group) per example."""
    rng = np.random.default_rng(seed)
    weights = rng.gamma(2.0, 1.0, n_scenes)
    scenes, groups = [], []
    for task, n in TASK_COUNTS.items():
        scenes += rng.choice(n_scenes, size=n, p=weights / weights.sum()).tolist()
        groups += [TASK_GROUPS[task]] * n
    return scenes, groups


def report(name: str, scenes: list[int], order: list[int], g: int) -> None:
    distinct, top = [], []
    for s in range(len(order) // g):
        counts = Counter(scenes[i] for i in order[s * g : (s + 1) * g])
        distinct.append(len(counts))
        top.append(max(counts.values()) / g)
    print(f"{name:32s} {len(distinct)} steps: distinct scenes/step median "
          f"{statistics.median(distinct):.0f} (min {min(distinct)}), largest scene share "
          f"median {100 * statistics.median(top):.1f} % (max {100 * max(top):.1f} %)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenes", type=int, default=562)
    ap.add_argument("--global-batch", type=int, default=256)
    args = ap.parse_args()
    g = args.global_batch
    scenes, groups = recipe_examples(args.scenes)
    print(f"{len(scenes)} examples over {args.scenes} scenes, global batch {g}")
    for grouped in (True, False):
        t0 = time.perf_counter()
        order = epoch_order(groups, seed=0, epoch=0, global_batch=g, group_by_task=grouped)
        dt = time.perf_counter() - t0
        report(f"epoch_order group_by_task={grouped}", scenes, order, g)
        print(f"{'':32s} one epoch's order in {dt:.2f} s, {len(scenes) - len(order)} dropped")
    perm = np.random.default_rng(1).permutation(len(scenes)).tolist()
    report("uniform permutation", scenes, perm, g)
    scene_sorted = sorted(range(len(scenes)), key=lambda i: scenes[i])
    report("scene-sorted (shard order)", scenes, scene_sorted, g)


if __name__ == "__main__":
    main()
