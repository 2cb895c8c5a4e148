"""Small synthetic build-shards folders (no scene preparation): clips with known geometry,
encoded by ``shard_sample.encode_clip`` and packed as build-shards packs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ross3d_data.shard_sample import Clip, encode_clip
from ross3d_data.shards import MANIFEST, write_tar


def random_clip(key: str, seed: int, views: int = 3, size: int = 64, n_boxes: int = 5) -> Clip:
    """A clip of ``views`` random-posed views of sloped, noisy depth (10 % zero) and boxes
    around back-projected pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    depth = np.stack(
        [rng.uniform(800, 2500) + rng.uniform(-8, 8) * rows + rng.uniform(-8, 8) * cols
         for _ in range(views)]
    )  # fmt: skip
    depth = (depth + rng.normal(0, 20, depth.shape)).clip(0).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.1] = 0
    K = np.tile(np.array([[60.0, 0, size / 2], [0, 60.0, size / 2], [0, 0, 1]]), (views, 1, 1))
    T = np.tile(np.eye(4), (views, 1, 1))
    for v in range(views):
        a = rng.uniform(0, 2 * np.pi)
        T[v, :3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
        T[v, :3, 3] = rng.uniform(-1, 1, 3)
    # boxes around the points of random pixels, so masks are neither all empty nor all full
    v, r, c = rng.integers(0, views, n_boxes), *rng.integers(0, size, (2, n_boxes))
    z = np.maximum(depth[v, r, c], 1000) / 1000.0
    cam = np.stack([(c - size / 2) / 60.0 * z, (r - size / 2) / 60.0 * z, z], 1)
    centres = np.einsum("nij,nj->ni", T[v, :3, :3], cam) + T[v, :3, 3]
    boxes = np.concatenate([centres, rng.uniform(0.3, 2.0, (n_boxes, 3))], 1)
    arrays = {
        "frame_ids": np.arange(views, dtype=np.int64),
        "K_crop": K.astype(np.float32),
        "T_aligned_cam": T.astype(np.float32),
        "coords": np.zeros((views, 2, 2, 3), np.float32),
        "coords_valid": np.ones((views, 2, 2), bool),
        "overlap": np.eye(views, dtype=np.float32),
        "coverage": np.zeros(views, np.float32),
        "bev_world_to_pixel": np.eye(3, dtype=np.float32),
        "boxes": boxes.astype(np.float32),
        "object_ids": np.arange(n_boxes, dtype=np.int64),
    }
    images = rng.integers(0, 255, (views, size, size, 3)).astype(np.uint8)
    bev = rng.integers(0, 255, (48, 48, 3)).astype(np.uint8)
    bev[:16] = 0  # a void band
    meta = {"scene_id": key, "views": views, "method": "uniform", "skipped_frames": {}}
    return Clip(key, images, depth, arrays, bev, [f"obj{i}" for i in range(n_boxes)], meta)


def write_shard_folder(out: Path, clips: list[Clip], sample: dict | None = None) -> Path:
    """One shard holding ``clips`` plus a manifest the ShardReader accepts."""
    out.mkdir(parents=True, exist_ok=True)
    members = [(f"{c.scene_id}.{n}", d) for c in clips for n, d in encode_clip(c)]
    write_tar(out / "shard-000000.tar", members)
    manifest = {
        "format": "ross3d-shards/1",
        "sample": sample or {"views": 3, "size": 64},
        "shards": [{"name": "shard-000000.tar", "keys": [c.scene_id for c in clips]}],
        "instruction_files": {},
        "scene_splits": {},
        "summary": {"failed": {}},
    }
    (out / MANIFEST).write_text(json.dumps(manifest))
    return out
