"""Point fusion of posed RGB-D frames for BEV images of scenes without a mesh.

Every valid depth pixel (every ``stride``-th row and column) is back-projected with the depth
intrinsics (OpenCV convention: pixel ``(u, v)`` has its centre at integer coordinates, so it
back-projects to ``d * K_depth^-1 [u, v, 1]``), coloured by projecting the camera-frame point
into the colour image with the colour intrinsics (depth and colour share the camera pose, as in
ScanNet's exports; in TUM both are the same 640x480 grid), and mapped to the aligned frame with
``T_aligned_cam``. The BEV renderer then keeps the highest point below the ceiling per pixel.
"""

from __future__ import annotations

import numpy as np

from ross3d_data.errors import SceneError
from ross3d_data.records import Intrinsics

MM_PER_M = 1000.0


def depth_to_colored_points(
    depth_mm_HW: np.ndarray,
    color_HW3: np.ndarray,
    depth_K: Intrinsics,
    color_K: Intrinsics,
    T_aligned_cam_44: np.ndarray,
    stride: int = 1,
    max_depth_m: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Coloured aligned-frame points of one frame: ``(points_N3 float32, colors_N3 uint8)``.

    Keeps depth pixels with ``0 < depth <= max_depth_m`` whose projection falls inside the
    colour image (nearest colour pixel).
    """
    v, u = np.mgrid[0 : depth_mm_HW.shape[0] : stride, 0 : depth_mm_HW.shape[1] : stride]
    d = depth_mm_HW[::stride, ::stride].astype(np.float64) / MM_PER_M
    valid = (d > 0) & (d <= max_depth_m)
    u, v, d = u[valid], v[valid], d[valid]
    x = (u - depth_K.cx) / depth_K.fx * d
    y = (v - depth_K.cy) / depth_K.fy * d
    cu = np.rint(color_K.fx * x / d + color_K.cx).astype(np.int64)
    cv = np.rint(color_K.fy * y / d + color_K.cy).astype(np.int64)
    h, w = color_HW3.shape[:2]
    inside = (cu >= 0) & (cu < w) & (cv >= 0) & (cv < h)
    points_cam = np.stack([x[inside], y[inside], d[inside]], axis=1)
    T = np.asarray(T_aligned_cam_44, dtype=np.float64)
    points = points_cam @ T[:3, :3].T + T[:3, 3]
    return points.astype(np.float32), color_HW3[cv[inside], cu[inside]]


def select_frames(frame_ids: list[int], max_frames: int) -> list[int]:
    """At most ``max_frames`` ids spread uniformly over ``frame_ids`` (all when fewer)."""
    if len(frame_ids) <= max_frames:
        return list(frame_ids)
    idx = np.unique(np.linspace(0, len(frame_ids) - 1, max_frames).round().astype(int))
    return [frame_ids[i] for i in idx]


def _check_frame_sizes(scene, frame) -> None:
    dk, ck = scene.depth_intrinsics, scene.color_intrinsics
    if frame.depth_mm_HW.shape != (dk.height, dk.width):
        raise SceneError(
            scene.root,
            f"frame {frame.frame_id}: depth is {frame.depth_mm_HW.shape[::-1]} (w, h) but the "
            f"depth intrinsics are for {dk.width}x{dk.height}",
        )
    if frame.color_HW3.shape[:2] != (ck.height, ck.width):
        raise SceneError(
            scene.root,
            f"frame {frame.frame_id}: colour is {frame.color_HW3.shape[1::-1]} (w, h) but the "
            f"colour intrinsics are for {ck.width}x{ck.height}",
        )


def fuse_scene_points(scene, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Coloured aligned-frame points from a scene's frames (``cfg``: a ``BevConfig``).

    Raises SceneError when the scene has no valid frame or no valid depth at all.
    """
    ids = select_frames(scene.frame_ids(), cfg.fusion_max_frames)
    if not ids:
        raise SceneError(scene.root, "no mesh and no frame with a valid pose: nothing to fuse")
    all_points, all_colors = [], []
    for fid in ids:
        frame = scene.load_frame(fid)
        _check_frame_sizes(scene, frame)
        points, colors = depth_to_colored_points(
            frame.depth_mm_HW,
            frame.color_HW3,
            scene.depth_intrinsics,
            scene.color_intrinsics,
            scene.T_aligned_world @ frame.T_world_cam,  # = T_aligned_cam, no second read
            cfg.fusion_depth_stride,
            cfg.fusion_max_depth_m,
        )
        all_points.append(points)
        all_colors.append(colors)
    points = np.concatenate(all_points)
    if len(points) == 0:
        raise SceneError(
            scene.root, f"no valid depth within {cfg.fusion_max_depth_m} m in {len(ids)} frames"
        )
    return points, np.concatenate(all_colors)
