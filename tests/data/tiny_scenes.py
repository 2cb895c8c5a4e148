"""Small hand-built scenes whose every number is known (used through conftest's fixtures).

A separate module (not conftest) so test modules can import the helpers by a unique name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ross3d_data.core.records import Frame, Intrinsics, Mesh
from ross3d_data.scannet import files as scannet
from ross3d_data.scannet.ply import write_ply
from ross3d_data.scannet.sens import SensHeader, write_sens

TINY_COLOR_K = Intrinsics(60.0, 62.0, 31.5, 23.5, 64, 48)
TINY_DEPTH_K = Intrinsics(30.0, 31.0, 15.5, 11.5, 32, 24)


def rot_z(deg: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.deg2rad(deg)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    T[:3, 3] = t
    return T


def tiny_frame(i: int, pose: np.ndarray) -> Frame:
    """Smooth colour gradient (JPEG-friendly) and exact depth 1000 + 10*i + column (mm)."""
    h, w = TINY_COLOR_K.height, TINY_COLOR_K.width
    yy, xx = np.mgrid[0:h, 0:w]
    color = np.stack([xx * 4, yy * 5, np.full_like(xx, 40 * i)], -1).clip(0, 255).astype(np.uint8)
    dh, dw = TINY_DEPTH_K.height, TINY_DEPTH_K.width
    depth = (1000 + 10 * i + np.tile(np.arange(dw), (dh, 1))).astype(np.uint16)
    depth[0, :] = 0  # invalid row
    return Frame(i, color, depth, pose)


@dataclass
class TinyScene:
    path: Path
    T_aligned_world: np.ndarray
    vertices_raw: np.ndarray
    frames: list[Frame]  # as written to .sens (invalid poses included)
    boxes: dict[int, np.ndarray]  # object id -> expected aligned box


def _tiny_mesh() -> tuple[Mesh, np.ndarray]:
    """Two unit-ish tetrahedra-like vertex groups; segments 0..3 (two per object)."""
    v = np.array(
        [[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3],  # object 7: segs 0, 1
         [5, 5, 1], [6, 5, 1], [5, 7, 1], [5, 5, 2]],  # object 9: segs 2, 3
        np.float32,
    )  # fmt: skip
    faces = np.array([[0, 1, 2], [0, 1, 3], [4, 5, 6], [4, 5, 7]])
    colors = (np.arange(24).reshape(8, 3) * 10).astype(np.uint8)
    return Mesh(v, colors, faces), np.array([0, 0, 1, 1, 2, 3, 3, 2])


def _aligned_box(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = pts @ T[:3, :3].T + T[:3, 3]
    lo, hi = p.min(0), p.max(0)
    return np.concatenate([(lo + hi) / 2, hi - lo])


def make_tiny_scene(
    root: Path, name="scene0000_00", n_frames=5, invalid=(2,), export=False
) -> TinyScene:
    """A scan folder: 2 annotated objects, aligned by rot_z(30) + shift, a .sens, opt. export."""
    d = Path(root) / name
    d.mkdir(parents=True)
    T = rot_z(30.0, (1.0, -2.0, 0.5))
    mesh, seg_idx = _tiny_mesh()
    write_ply(scannet.mesh_path(d), mesh)
    scannet.write_meta(scannet.meta_path(d), T, TINY_COLOR_K, TINY_DEPTH_K)
    scannet.write_annotations(d, seg_idx, [(7, "chair", [0, 1]), (9, "table", [2, 3])])
    frames = []
    for i in range(n_frames):
        pose = rot_z(10.0 * i, (0.1 * i, 0.0, 1.5))
        frames.append(tiny_frame(i, np.full((4, 4), -np.inf) if i in invalid else pose))
    write_sens(scannet.sens_path(d), SensHeader(TINY_COLOR_K, TINY_DEPTH_K, n_frames), frames)
    if export:
        from ross3d_data.scannet.export import export_scene_frames

        export_scene_frames(scannet.sens_path(d), d, every=1)
    v = mesh.vertices_N3.astype(np.float64)
    boxes = {7: _aligned_box(T, v[:4]), 9: _aligned_box(T, v[4:])}
    return TinyScene(d, T, v, frames, boxes)
