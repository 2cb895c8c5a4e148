"""Synthetic loader examples in the contract format (docs/contracts.md sections 2-3) and a tiny
model, so the model tests do not depend on the shard pipeline.

Scene: the cameras have identity rotation (OpenCV axes = aligned axes) and sit at x offsets
CAM_X in front of a wall 2 m away (constant depth), so per-pixel aligned xyz is known in closed
form: x = cam_x + (u - cx) / f * 2, y = (v - cy) / f * 2, z = 2.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from ross3d_data.core.geometry import backproject_pixels, depth_mm_to_m

S, G, V = 384, 14, 4
FOCAL, DEPTH_MM = 300.0, 2000
CAM_X = (0.0, 0.5, 1.0, 1.5)


def _cell_means(xyz_VHW3: torch.Tensor) -> torch.Tensor:
    """Mean xyz over the 27x27-px cells of the top-left 378x378 crop -> [V, 14, 14, 3]."""
    crop = xyz_VHW3[:, : 27 * G, : 27 * G]
    return crop.reshape(-1, G, 27, G, 27, 3).mean(dim=(2, 4))


def make_example(instruction: dict | None, seed: int = 0) -> dict:
    """One loader example of the synthetic scene (tensors cached per seed: do not mutate)."""
    return {**_scene_tensors(seed), "instruction": instruction}


@functools.cache
def _scene_tensors(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (V, 3, S, S), generator=gen, dtype=torch.uint8)
    depth = torch.full((V, S, S), DEPTH_MM, dtype=torch.int32)
    depth[:, :8, :8] = 0  # a few invalid pixels
    K = torch.tensor([[FOCAL, 0, S / 2], [0, FOCAL, S / 2], [0, 0, 1]], dtype=torch.float32)
    T = torch.eye(4).repeat(V, 1, 1)
    T[:, 0, 3] = torch.tensor(CAM_X)
    xyz = torch.from_numpy(
        backproject_pixels(depth_mm_to_m(depth.numpy()), K.repeat(V, 1, 1).numpy(), T.numpy())
    )
    overlap = torch.eye(V) + 0.5 * (1 - torch.eye(V)) / (
        1 + (torch.arange(V)[:, None] - torch.arange(V)).abs()
    )
    bev = torch.zeros(3, 432, 432, dtype=torch.uint8)
    bev[:, 100:300, 50:400] = torch.randint(1, 256, (3, 200, 350), generator=gen, dtype=torch.uint8)
    boxes = np.array(
        [[0.0, 0.0, 2.0, 0.6, 0.6, 0.4], [1.5, 0.5, 2.0, 0.4, 0.4, 0.4], [9.0, 9.0, 9.0, 1, 1, 1]],
        dtype=np.float32,
    )
    return {
        "scene_id": "scene0000_00",
        "frame_ids": torch.arange(V, dtype=torch.int64) * 10,
        "images": images,
        "depth_mm": depth.to(torch.uint16),
        "K_crop": K.repeat(V, 1, 1),
        "T_aligned_cam": T,
        "coords": _cell_means(xyz),
        "coords_valid": torch.ones(V, G, G, dtype=torch.bool),
        "overlap": overlap.float(),
        "coverage": (overlap - torch.eye(V)).max(dim=1).values,
        "bev": bev,
        "bev_world_to_pixel": torch.eye(3),
        "boxes": torch.from_numpy(boxes),
        "object_ids": torch.tensor([10, 11, 12]),
        "labels": ["chair", "table", "lamp"],
    }


def instruction(task: str, **kw) -> dict:
    prompts = {
        "scanqa": "What color is the chair? Answer the question simply.",
        "sqa3d": "I am sitting on the bed. What is on my left? Answer the question using a single word or phrase.",
        "scan2cap": "Given an object located at <coord> , describe the object in detail.",
        "scanrefer": "Identify the object according to the following description.\nthe brown chair",
        "multi3drefer": "Identify the object according to the following description.\nthe chairs\nThere may be no corresponding object, or there may be one or more objects.",
    }
    base = {
        "id": f"{task}/train/0",
        "scene_id": "scene0000_00",
        "task": task,
        "split": "train",
        "prompt": prompts[task],
        "answers": [] if task in ("scanrefer", "multi3drefer") else ["brown", "the chair is brown"],
        "object_ids": [10] if task in ("scan2cap", "scanrefer", "multi3drefer") else [],
        "boxes": [],
        "question_type": None,
        "eval": {},
    }
    base.update(kw)
    return base
