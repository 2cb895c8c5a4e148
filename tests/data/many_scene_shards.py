"""A build-shards folder of many cheap scenes, made through build-shards' own resume path.

Each scene folder holds only an empty mesh file (so ``find_scenes`` lists it); its prepared
sample (2 views of 8x8 pixels, encoded by ``shard_sample.encode_clip``) is put in the build
cache first, exactly where an interrupted build leaves it, so ``build_shards`` packs, indexes
and writes the manifest for real without rendering anything.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from rich.console import Console
from ross3d_data.instructions import Instruction, write_jsonl
from ross3d_data.shard_sample import Clip, SampleConfig, encode_clip
from ross3d_data.shards import ShardConfig, build_shards, write_tar

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
) -> dict:
    """Scenes ``scene0000_00``...: ``n_train`` with train instructions (2-14 per task each),
    then ``n_val`` with val instructions, then ``n_textless`` with none. Returns the shard
    folder, the scene ids of each kind and the instruction counts."""
    rng = random.Random(seed)
    names = [f"scene{i:04d}_00" for i in range(n_train + n_val + n_textless)]
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
