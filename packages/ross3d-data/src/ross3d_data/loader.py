"""Stream examples from build-shards output (docs/contracts.md section 2).

One example per (clip, instruction) of the requested split; with ``vision_only`` also one
example (``instruction=None``) per clip that has no instruction in any split (semi-supervised
reconstruction-only data). Clips with instructions only in other splits are never yielded.

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
``.contiguous()`` if a kernel needs it). With ``batch_size``, fixed-shape tensors are stacked into ``[B, ...]`` and ``scene_id``,
``boxes``, ``object_ids``, ``labels`` and ``instruction`` become lists of length B.

Order: shards are shuffled (deterministically from ``seed``), split over workers
(``split_by_worker``) and nodes (``split_by_node``); (clip, instruction) pairs are shuffled in a
buffer of ``shuffle_buffer`` pairs seeded by ``seed`` and the worker id, and decoded after the
shuffle (the buffer holds encoded clips only). Same seed, shards and worker count -> same order.
Each example appears exactly once per epoch as long as every worker gets whole shards; use at
least as many shards as workers x nodes to keep all of them busy. Pass ``seed + epoch`` to
reshuffle per epoch. torch is imported lazily (``ross3d-data[torch]``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .shard_sample import ARRAY_NAMES, decode_clip
from .shards import read_manifest

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


def _read_index(path: Path | None) -> dict[str, list[dict]]:
    """scene_id -> instruction dicts (sorted by id); {} when a folder has no index for a split."""
    index: dict[str, list[dict]] = {}
    if path is None or not Path(path).is_file():
        return index
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                inst = json.loads(line)
                index.setdefault(inst["scene_id"], []).append(inst)
    return {k: sorted(v, key=lambda i: i["id"]) for k, v in index.items()}


def resolve_source(
    source: str | Path | Sequence[str], split: str, instructions: Path | None
) -> tuple[list[str], dict[str, list[dict]], set[str]]:
    """``(shard urls, scene -> instructions, scenes with instructions in any split)``.

    ``source`` is a build-shards folder (its manifest gives shards and indexes) or a list of
    shard urls/paths (then ``instructions`` names the index and only its scenes count as
    having text).
    """
    if instructions is not None and not Path(instructions).is_file():
        raise FileNotFoundError(f"{instructions}: no such instruction index")
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        root = Path(source)
        manifest = read_manifest(root)
        urls = [str(root / s["name"]) for s in manifest["shards"]]
        index_path = instructions or root / f"instructions-{split}.jsonl"
        with_text = set(manifest["scene_splits"])
    else:
        urls = [str(source)] if isinstance(source, (str, Path)) else [str(u) for u in source]
        for url in urls:  # local paths must exist; remote/pipe urls are checked when read
            if ":" not in url and not Path(url).is_file():
                raise FileNotFoundError(f"{url}: no such shard file or build-shards folder")
        index_path = instructions
        with_text = None
    index = _read_index(index_path)
    if not urls:
        raise ValueError(f"{source}: no shards")
    return urls, index, with_text if with_text is not None else set(index)


def clip_to_tensors(sample: dict[str, Any]) -> dict[str, Any]:
    """Decode one raw WebDataset sample into the contract's tensors (no instruction)."""
    import torch

    clip = decode_clip(sample)
    out: dict[str, Any] = {"scene_id": clip.scene_id}
    for name in ARRAY_NAMES:
        out[name] = torch.from_numpy(np.ascontiguousarray(clip.arrays[name]))
    # channel-first views of the decoded HWC buffers (no copy; torch.stack/.contiguous() copy)
    out["images"] = torch.from_numpy(clip.images_VSS3).permute(0, 3, 1, 2)
    out["depth_mm"] = torch.from_numpy(clip.depth_mm_VSS.astype(np.uint16, copy=False))
    out["bev"] = torch.from_numpy(clip.bev_HW3).permute(2, 0, 1)
    out["labels"] = list(clip.labels)
    return out


def _worker_id() -> int:
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    return 0 if info is None else info.id


def _pairs(samples, index, with_text: set[str], vision_only: bool):
    for sample in samples:
        key = sample["__key__"]
        insts = index.get(key, [])
        if insts:
            for inst in insts:
                yield sample, inst
        elif vision_only and key not in with_text:
            yield sample, None


def _shuffle(pairs, bufsize: int, seed: int):
    if bufsize <= 1:
        yield from pairs
        return
    rng = random.Random(seed * 1_000_003 + _worker_id())
    buf = []
    for pair in pairs:
        buf.append(pair)
        if len(buf) >= bufsize:
            i = rng.randrange(len(buf))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


def _decoded(pairs):
    for sample, inst in pairs:
        example = clip_to_tensors(sample)
        example["instruction"] = inst
        yield example


def build_dataset(
    source: str | Path | Sequence[str],
    split: str = "train",
    shuffle_buffer: int = 1000,
    seed: int = 0,
    vision_only: bool = True,
    instructions: Path | None = None,
):
    """The webdataset pipeline (an IterableDataset) behind :func:`make_loader`."""
    import webdataset as wds

    urls, index, with_text = resolve_source(source, split, instructions)
    shuffle = shuffle_buffer > 1
    dataset = wds.WebDataset(
        urls,
        shardshuffle=len(urls) if shuffle else False,
        detshuffle=shuffle,
        seed=seed,
        nodesplitter=wds.split_by_node,
        workersplitter=wds.split_by_worker,
        empty_check=False,
    )
    return (
        dataset.compose(partial(_pairs, index=index, with_text=with_text, vision_only=vision_only))
        .compose(partial(_shuffle, bufsize=shuffle_buffer, seed=seed))
        .compose(_decoded)
    )


def collate_examples(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack fixed-shape tensors into [B, ...]; variable-size fields become lists."""
    import torch

    batch: dict[str, Any] = {k: torch.stack([e[k] for e in examples]) for k in STACKED}
    batch.update({k: [e[k] for e in examples] for k in LISTED})
    return batch


def make_loader(
    source: str | Path | Sequence[str],
    split: str = "train",
    batch_size: int | None = None,
    num_workers: int = 0,
    shuffle_buffer: int = 1000,
    seed: int = 0,
    vision_only: bool = True,
    instructions: Path | None = None,
):
    """A torch DataLoader over the shards (see the module docstring for the contract)."""
    from torch.utils.data import DataLoader

    dataset = build_dataset(source, split, shuffle_buffer, seed, vision_only, instructions)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_examples if batch_size is not None else _identity,
    )


def _identity(example: dict[str, Any]) -> dict[str, Any]:
    return example


def iter_examples(
    source: str | Path | Sequence[str],
    split: str = "val",
    vision_only: bool = False,
    instructions: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Examples in shard order without a DataLoader or shuffling (for inference)."""
    return iter(build_dataset(source, split, 0, 0, vision_only, instructions))
