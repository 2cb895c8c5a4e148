"""Stream examples from build-shards output (docs/contracts.md section 2) with torch.

Reading goes through ``ross3d_data.shards.reader.ShardReader`` (the one shard reader). One example
per (clip, instruction) of the requested split, plus ``(clip, None)`` for each usable clip of
``vision_only_scenes`` (semi-supervised reconstruction-only data; held-out clips are refused,
see ``ShardReader.vision_only``).

Tensor contract of an example (V views, S = 384, G = 14, K objects)::

    scene_id            str
    frame_ids           int64   [V]          source frame ids of the views
    images              uint8   [V, 3, S, S] RGB crops
    depth_mm            uint16  [V, S, S]    depth on the crop pixels, 0 = invalid
    K_crop              float32 [V, 3, 3]    intrinsics of the crop
    T_aligned_cam       float32 [V, 4, 4]    aligned camera-to-world
    coords              float32 [V, G, G, 3] aligned xyz per token cell (not clamped/quantised)
    coords_valid        bool    [V, G, G]
    overlap             float32 [V, V]       overlap[i, j]: fraction of i's pixels seen by j
    coverage            float32 [V]          fraction of i's pixels seen by any other view
    bev                 uint8   [3, 432, 432]
    bev_world_to_pixel  float32 [3, 3]       aligned (x, y, 1) -> (col, row, 1)
    boxes               float32 [K, 6]       GT boxes [cx, cy, cz, dx, dy, dz], aligned
    object_ids          int64   [K]
    labels              list[str] (K)
    instruction         dict (instruction schema) or None

``images`` and ``bev`` are channel-first views of channel-last buffers (not contiguous; call
``.contiguous()`` if a kernel needs it). With ``batch_size``, fixed-shape tensors are stacked
into ``[B, ...]`` and ``scene_id``, ``boxes``, ``object_ids``, ``labels`` and ``instruction``
become lists of length B.

Order (``make_loader``): ``ross3d_data.shards.sampling.epoch_order`` of all examples from
``(seed, epoch)`` (global batch = ``batch_size`` x world size), then each rank takes a
disjoint, equal-length slice of it (``rank_slice``: split after shuffling; at most
``world_size - 1`` examples dropped besides the epoch order's own remainder). DataLoader
workers decode whole batches of that slice. Same seed and epoch -> same order, whatever the
number of workers. torch is imported lazily (``ross3d-data[torch]``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sample import ARRAY_NAMES, Clip, decode_clip
from ross3d_data.shards.sampling import epoch_order, rank_slice, task_group

STACKED = (
    "frame_ids",
    "images",
    "depth_mm",
    "K_crop",
    "T_aligned_cam",
    "coords",
    "coords_valid",
    "overlap",
    "coverage",
    "bev",
    "bev_world_to_pixel",
)
LISTED = ("scene_id", "boxes", "object_ids", "labels", "instruction")


def clip_to_tensors(clip: Clip | dict[str, Any]) -> dict[str, Any]:
    """The contract's tensors (no instruction) of a decoded clip (``ShardReader.clip``) or of
    a raw sample (``ShardReader.sample``). Tensors share memory with a decoded clip's arrays
    where they can: never modify them in place."""
    import torch

    if not isinstance(clip, Clip):
        clip = decode_clip(clip)
    out: dict[str, Any] = {"scene_id": clip.scene_id}
    for name in ARRAY_NAMES:
        out[name] = torch.from_numpy(np.ascontiguousarray(clip.arrays[name]))
    # channel-first views of the decoded HWC buffers (no copy; torch.stack/.contiguous() copy)
    out["images"] = torch.from_numpy(clip.images_VSS3).permute(0, 3, 1, 2)
    out["depth_mm"] = torch.from_numpy(clip.depth_mm_VSS.astype(np.uint16, copy=False))
    out["bev"] = torch.from_numpy(clip.bev_HW3).permute(2, 0, 1)
    out["labels"] = list(clip.labels)
    return out


def collate_examples(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack fixed-shape tensors into [B, ...]; variable-size fields become lists."""
    import torch

    batch: dict[str, Any] = {k: torch.stack([e[k] for e in examples]) for k in STACKED}
    batch.update({k: [e[k] for e in examples] for k in LISTED})
    return batch


class ExampleDataset:
    """Map-style dataset: example i = the contract's tensors of ``examples[i]``."""

    def __init__(self, reader: ShardReader, examples: list[tuple[str, dict | None]]) -> None:
        self.reader, self.examples = reader, examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        key, instruction = self.examples[i]
        example = clip_to_tensors(self.reader.clip(key))
        example["instruction"] = instruction
        return example


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else the initialised torch.distributed group, else (0, 1)."""
    import torch.distributed as dist

    if rank is None and world_size is None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return (rank or 0), (world_size or 1)


def make_loader(
    source: str | Path | ShardReader,
    split: str = "train",
    batch_size: int | None = None,
    num_workers: int = 0,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    group_by_task: bool = False,
    tasks: Sequence[str] | None = None,
    vision_only_scenes: Sequence[str] = (),
    rank: int | None = None,
    world_size: int | None = None,
):
    """A torch DataLoader over this rank's slice of one epoch (see the module docstring).
    ``shuffle=False``: examples in (clip, id) order, still split over ranks."""
    from torch.utils.data import DataLoader

    reader = source if isinstance(source, ShardReader) else ShardReader(source)
    examples = reader.examples(split, tasks, vision_only=vision_only_scenes)
    rank, world_size = _rank_world(rank, world_size)
    if shuffle:
        groups = [task_group(inst) for _, inst in examples]
        per_rank = batch_size or 1
        order = epoch_order(groups, seed=seed, epoch=epoch,
                            global_batch=per_rank * world_size, group_by_task=group_by_task)  # fmt: skip
    else:
        order = list(range(len(examples)))
    return DataLoader(
        ExampleDataset(reader, examples),
        batch_size=batch_size,
        sampler=rank_slice(order, rank, world_size),
        num_workers=num_workers,
        collate_fn=collate_examples if batch_size is not None else _identity,
    )


def _identity(example: dict[str, Any]) -> dict[str, Any]:
    return example


def iter_examples(
    source: str | Path | ShardReader,
    split: str = "val",
    tasks: Sequence[str] | None = None,
    vision_only_scenes: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """Examples in (clip, id) order, decoded one by one (no DataLoader, no shuffle)."""
    reader = source if isinstance(source, ShardReader) else ShardReader(source)
    dataset = ExampleDataset(reader, reader.examples(split, tasks, vision_only=vision_only_scenes))
    return (dataset[i] for i in range(len(dataset)))
