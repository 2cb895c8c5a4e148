"""Deterministic micro-batch streams that are identical however the work is split.

The examples of all epochs form one global sequence (epoch e shuffled with a buffer seeded by
(seed, e)); it is cut into global micro-batches of `micro_batch_size`. Optimiser step s uses
global micro-batches [s * A * W, (s + 1) * A * W) for A accumulation steps and W processes, and
process r takes every W-th of them starting at r. Hence 2 processes x 1 accumulation see the same
examples per step as 1 process x 2 accumulations, and a resumed run can skip exactly what was used.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Example = dict[str, Any]


@dataclass(frozen=True)
class MicroBatch:
    index: int  # global micro-batch index (the per-micro-batch RNG seed derives from it)
    epoch: int  # epoch of its first example
    examples: list[Example]


def shuffled(examples: Iterable[Example], buffer: int, seed: int) -> Iterator[Example]:
    """Buffer shuffle (as webdataset's, but with a private seeded RNG so it is reproducible)."""
    rng = random.Random(seed)
    pool: list[Example] = []
    for example in examples:
        pool.append(example)
        if len(pool) >= buffer:
            yield pool.pop(rng.randrange(len(pool)))
    rng.shuffle(pool)
    yield from pool


def global_examples(
    epoch_examples: Callable[[int], Iterable[Example]], shuffle_buffer: int, seed: int
) -> Iterator[tuple[int, Example]]:
    """(epoch, example) forever. ValueError when an epoch yields no example at all."""
    epoch = 0
    while True:
        count = 0
        for example in shuffled(epoch_examples(epoch), shuffle_buffer, seed * 100_003 + epoch):
            count += 1
            yield epoch, example
        if count == 0:
            raise ValueError("the training data yielded no example (empty shards or filters?)")
        epoch += 1


def micro_batches(
    epoch_examples: Callable[[int], Iterable[Example]],
    *,
    micro_batch_size: int,
    world_size: int,
    rank: int,
    start: int = 0,
    shuffle_buffer: int = 256,
    seed: int = 0,
) -> Iterator[MicroBatch]:
    """This process's micro-batches with global index >= `start`, in order.

    Skipped micro-batches are read but not collated (the loader yields raw examples)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    stream = global_examples(epoch_examples, shuffle_buffer, seed)
    index = 0
    while True:
        chunk = [next(stream) for _ in range(micro_batch_size)]
        if index >= start and index % world_size == rank:
            yield MicroBatch(index, chunk[0][0], [example for _, example in chunk])
        index += 1
