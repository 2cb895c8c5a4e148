"""Cost of the one-graph terms: forward + backward of Ross3DForCausalLM per sample type with
`one_graph=True` (every idle trainable head run on one token, times 0) against `False`.

    uv run python benchmarks/bench_one_graph.py [--models tiny mid] [--reps 3] [--work DIR]

Random weights, demo shards (1 annotated + 1 vision-only scene, 4 views per clip), micro-batch 1
(the recipe's per-GPU batch), median of `reps` timed steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch


def sample_items(task) -> dict[str, tuple]:
    """One (clip key, instruction) per sample type from the task's examples."""
    by_task = {}
    for key, instruction in task.examples:
        if instruction is not None:
            by_task.setdefault(instruction["task"], (key, instruction))
    key = task.examples[0][0]
    return {"qa": by_task["scanqa"], "grounding": by_task["scanrefer"], "vision-only": (key, None)}


def step_flops(model, batch: dict, cross_view: bool, one_graph: bool) -> int:
    """Forward + backward FLOPs (torch's counter: matmuls / convs / attention), exact."""
    from torch.utils.flop_counter import FlopCounterMode

    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    with FlopCounterMode(display=False) as counter:
        model(batch, cross_view=cross_view, one_graph=one_graph).loss.backward()
    return counter.get_total_flops()


def step_seconds(model, batch: dict, cross_view: bool, one_graph: bool, reps: int) -> float:
    times = []
    for rep in range(reps + 1):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        began = time.perf_counter()
        model(batch, cross_view=cross_view, one_graph=one_graph).loss.backward()
        if rep:  # the first is warm-up
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def bench(model_name: str, shards: Path, reps: int) -> list[tuple]:
    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import DataConfig
    from ross3d_model.training.task import Ross3DTask

    task = Ross3DTask(load_config(model_name), shards, DataConfig())
    torch.manual_seed(0)
    model = task.build_model()
    model.train()
    items = sample_items(task)
    cases = [("qa", False), ("qa", True), ("grounding", False), ("vision-only", False)]
    rows = []
    for kind, cross_view in cases:
        batch = task.collate([items[kind]], seed=0)
        plain = step_seconds(model, batch, cross_view, False, reps)
        one = step_seconds(model, batch, cross_view, True, reps)
        flops = [step_flops(model, batch, cross_view, g) for g in (False, True)]
        label = kind + (" (cross-view step)" if cross_view else "")
        rows.append((model_name, label, plain, one, *flops))
        print(f"{model_name:5s} {label:26s} {plain * 1e3:8.1f} ms {one * 1e3:8.1f} ms "
              f"{100 * (one / plain - 1):+6.1f} %   {flops[0] / 1e9:8.2f} {flops[1] / 1e9:8.2f} "
              f"GFLOP {100 * (flops[1] / flops[0] - 1):+6.2f} %", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["tiny", "mid"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()

    from rich.console import Console
    from ross3d_model.demo import DemoConfig, prepare_data

    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_one_graph_"))
    data = prepare_data(DemoConfig(out=work, scenes=1), Console(quiet=True), reuse=True)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print("model sample type                   without       with   extra   "
          "  without     with  FLOPs  extra")  # fmt: skip
    for name in args.models:
        bench(name, data["shards"], args.reps)


if __name__ == "__main__":
    main()
