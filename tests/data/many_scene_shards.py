"""Synthetic build-shards folders for tests, no scene preparation.

``build_many_scene_shards``: many cheap scenes made through build-shards' own resume path. Each
scene folder holds only an empty mesh file (so ``find_scenes`` lists it); its prepared sample
(2 views of 8x8 pixels, encoded by ``shard_sample.encode_clip``) is put in the build cache first,
exactly where an interrupted build leaves it, so ``build_shards`` packs, indexes and writes the
manifest for real without rendering anything.

``random_clip`` + ``write_shard_folder``: one shard of clips with known random geometry, packed
as build-shards packs them, with a minimal manifest.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from rich.console import Console
from ross3d_data.instructions import Instruction, write_jsonl
from ross3d_data.shards.build import FORMAT, MANIFEST, ShardConfig, build_shards, write_tar
from ross3d_data.shards.sample import Clip, SampleConfig, encode_clip

TASKS = ("scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer")
VIEWS = 2


def tiny_clip(scene_id: str, value: int) -> Clip:
    """A valid clip of VIEWS views whose pixels all equal ``value`` (identifies the clip)."""
    v, g = VIEWS, 14
    arrays = {
        "frame_ids": np.arange(v, dtype=np.int64),
        "K_crop": np.tile(np.eye(3, dtype=np.float32), (v, 1, 1)),
        "T_aligned_cam": np.tile(np.eye(4, dtype=np.float32), (v, 1, 1)),
        "coords": np.zeros((v, g, g, 3), np.float32),
        "coords_valid": np.ones((v, g, g), bool),
        "overlap": np.eye(v, dtype=np.float32),
        "coverage": np.zeros(v, np.float32),
        "bev_world_to_pixel": np.eye(3, dtype=np.float32),
        "boxes": np.zeros((1, 6), np.float32),
        "object_ids": np.array([value], np.int64),
    }
    meta = {"scene_id": scene_id, "views": v, "method": "uniform", "skipped_frames": {}}
    images = np.full((v, 8, 8, 3), value % 256, np.uint8)
    depth = np.full((v, 8, 8), 1000 + value, np.uint16)
    bev = np.full((8, 8, 3), value % 256, np.uint8)
    return Clip(scene_id, images, depth, arrays, bev, ["chair"], meta)


def _instructions(scene_ids: list[str], split: str, rng: random.Random) -> list[Instruction]:
    out = []
    for sid in scene_ids:
        for task in TASKS:
            for k in range(rng.randint(2, 14)):
                grounding = task in ("scanrefer", "multi3drefer")
                out.append(Instruction(id=f"{task}/{split}/{sid}-{k}", scene_id=sid, task=task,
                                       split=split, prompt="where is it?",
                                       answers=[] if grounding else ["there"], object_ids=[0]))  # fmt: skip
    return out


def build_many_scene_shards(
    root: Path,
    n_train: int,
    *,
    n_val: int = 0,
    n_textless: int = 0,
    seed: int = 0,
    max_shard_bytes: int = 1 << 16,
    split_lists: tuple[tuple[str, Path], ...] = (),
    other_textless: tuple[str, ...] = (),
) -> dict:
    """Scenes ``scene0000_00``...: ``n_train`` with train instructions (2-14 per task each),
    then ``n_val`` with val instructions, then ``n_textless`` with none, then the scenes
    ``other_textless`` (ids of other datasets, e.g. ``arkitscenes-1``) with none. Returns the
    shard folder, the scene ids of each kind and the instruction counts."""
    rng = random.Random(seed)
    names = [f"scene{i:04d}_00" for i in range(n_train + n_val + n_textless)]
    names += list(other_textless)
    train, val, textless = (
        names[:n_train],
        names[n_train : n_train + n_val],
        names[n_train + n_val :],
    )
    scans = root / "scans"
    for name in names:
        (scans / name).mkdir(parents=True)
        (scans / name / f"{name}_vh_clean_2.ply").write_bytes(b"")  # never read (cached sample)
    inst_file = root / "instructions.jsonl"
    insts = _instructions(train, "train", rng) + _instructions(val, "val", rng)
    write_jsonl(insts, inst_file)
    cfg = ShardConfig(scenes=(scans,), out=root / "shards", instructions=(inst_file,),
                      sample=SampleConfig(views=VIEWS), max_shard_bytes=max_shard_bytes,
                      split_lists=split_lists)  # fmt: skip
    cache = cfg.out / ".cache" / cfg.fingerprint()
    cache.mkdir(parents=True)
    for i, name in enumerate(names):
        members = [(f"{name}.{member}", data) for member, data in encode_clip(tiny_clip(name, i))]
        write_tar(cache / f"{name}.tar", members)
    summary = build_shards(cfg, console=Console(quiet=True))
    assert summary.reused == len(names) and not summary.failed
    return {"shards": cfg.out, "train": train, "val": val, "textless": textless,
            "instructions": insts}  # fmt: skip


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
        "format": FORMAT,
        "sample": sample or {"views": 3, "size": 64},
        "shards": [{"name": "shard-000000.tar", "keys": [c.scene_id for c in clips]}],
        "instruction_files": {},
        "scene_splits": {},
        "summary": {"failed": {}},
    }
    (out / MANIFEST).write_text(json.dumps(manifest))
    return out
