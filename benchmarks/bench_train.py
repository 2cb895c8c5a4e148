"""Training throughput of the tiny config on CPU: samples/s and tokens/s.

    uv run python benchmarks/bench_train.py [--steps 12] [--micro-batch 2] [--work DIR]

Builds the demo shards (2 annotated scenes + 1 vision-only, 4 views per clip), trains the tiny
run config and reports the rate over the steps after the first two (warm-up excluded). Tokens =
text tokens + visual tokens (210 per view incl. newlines) of every sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.demo import DemoConfig, prepare_data
    from ross3d_model.training.task import train_from_config

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_train_"))
    data = prepare_data(DemoConfig(out=work, scenes=2), Console(quiet=True))
    run = load_run_config("tiny")
    run.train = dataclasses.replace(
        run.train, max_steps=args.steps, micro_batch_size=args.micro_batch, save_every=10**6
    )
    result = train_from_config(run, work / "train", shards=data["shards"], progress=False)
    timed = result.records[2:]
    seconds = timed[-1]["elapsed_s"] - result.records[1]["elapsed_s"]
    cpu = timed[-1]["cpu_s"] - result.records[1]["cpu_s"]
    samples = sum(r["samples"] for r in timed)
    tokens = sum(r["tokens"] for r in timed)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads")
    print(f"tiny config, micro-batch {args.micro_batch}, {len(timed)} timed steps: {seconds:.1f} s")
    print(
        f"wall: samples/s {samples / seconds:.3f}, tokens/s {tokens / seconds:.0f}, "
        f"s/step {seconds / len(timed):.2f}"
    )
    print(
        f"CPU (process time, all threads): samples per CPU-s {samples / cpu:.3f}, "
        f"tokens per CPU-s {tokens / cpu:.0f}, CPU-s/step {cpu / len(timed):.2f}"
    )


if __name__ == "__main__":
    main()
