"""Deterministic micro-batch streams that are identical however the work is split.

The items of all epochs form one global sequence (the task orders epoch e from (seed, e): the
Ross3D task with ross3d_data.shards.sampling.epoch_order, whose epochs are whole global batches); it is
cut into global micro-batches of `micro_batch_size`. Optimiser step s uses global micro-batches
[s * A * W, (s + 1) * A * W) for A accumulation steps and W processes, and process r takes every
W-th of them starting at r. Hence 2 processes x 1 accumulation see the same examples per step as
1 process x 2 accumulations, and a resumed run skips exactly what was used. Items are cheap
(clip keys) until the task collates them, so skipped micro-batches cost little.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MicroBatch:
    index: int  # global micro-batch index (the per-micro-batch RNG seed derives from it)
    epoch: int  # epoch of its first item
    items: list[Any]


def global_items(epoch_items: Callable[[int], Iterable[Any]]) -> Iterator[tuple[int, Any]]:
    """(epoch, item) forever. ValueError when an epoch yields no item at all."""
    epoch = 0
    while True:
        count = 0
        for item in epoch_items(epoch):
            count += 1
            yield epoch, item
        if count == 0:
            raise ValueError("the training data yielded no example (empty shards or filters?)")
        epoch += 1


def micro_batches(
    epoch_items: Callable[[int], Iterable[Any]],
    *,
    micro_batch_size: int,
    world_size: int,
    rank: int,
    start: int = 0,
) -> Iterator[MicroBatch]:
    """This process's micro-batches with global index >= `start`, in order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    stream = global_items(epoch_items)
    index = 0
    while True:
        chunk = [next(stream) for _ in range(micro_batch_size)]
        if index >= start and index % world_size == rank:
            yield MicroBatch(index, chunk[0][0], [item for _, item in chunk])
        index += 1
