"""Point fusion of posed RGB-D frames for BEV images of scenes without a mesh.

Every valid depth pixel (of every ``stride``-th row and column) is back-projected with the depth
intrinsics (OpenCV convention: pixel ``(u, v)`` has its centre at integer coordinates, so it
back-projects to ``d * K_depth^-1 [u, v, 1]``), coloured by projecting the camera-frame point
into the colour image with the colour intrinsics (depth and colour share the camera pose, as in
ScanNet's exports; in TUM both are the same 640x480 grid), and mapped to the aligned frame with
``T_aligned_cam``. The BEV renderer then keeps the highest point below the ceiling per pixel.
"""

from __future__ import annotations

import numpy as np

from ross3d_data.bev.grid import (
    BevConfig,
    BevResult,
    fill_small_holes,
    floor_and_ceiling,
    grid_below,
)
from ross3d_data.bev.raster import PointCanvas
from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Intrinsics

MM_PER_M = 1000.0
EXTENT_STRIDE = 4  # pixel stride of the first pass (floor, cut and extent only)


def _strided(n: int, stride: int) -> np.ndarray:
    """Every ``stride``-th index of ``range(n)`` plus the last, so the image border is kept."""
    idx = np.arange(0, n, stride)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


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

    Uses every ``stride``-th row and column plus the last ones (the frame's border bounds the
    BEV extent). Keeps depth pixels with ``0 < depth <= max_depth_m`` whose projection falls inside the
    colour image (nearest colour pixel). Depth and colour share the optical centre, so the
    colour pixel of a depth pixel does not depend on its depth: it is looked up per row/column.
    """
    rows, cols = (_strided(n, stride) for n in depth_mm_HW.shape)
    x_ray = (cols - depth_K.cx) / depth_K.fx  # x / z of each depth column's ray
    y_ray = (rows - depth_K.cy) / depth_K.fy
    color_col = np.rint(color_K.fx * x_ray + color_K.cx).astype(np.int64)
    color_row = np.rint(color_K.fy * y_ray + color_K.cy).astype(np.int64)
    h, w = color_HW3.shape[:2]
    depth_m = depth_mm_HW[np.ix_(rows, cols)].astype(np.float32) / np.float32(MM_PER_M)
    valid = (depth_m > 0) & (depth_m <= max_depth_m)
    valid &= ((color_row >= 0) & (color_row < h))[:, None] & ((color_col >= 0) & (color_col < w))
    r, c = np.nonzero(valid)
    T = np.asarray(T_aligned_cam_44, dtype=np.float64)
    # aligned-frame ray direction per column/row: R @ [x_ray, y_ray, 1] = x R0 + y R1 + R2
    dir_c = (x_ray[:, None] * T[:3, 0]).astype(np.float32)
    dir_r = (y_ray[:, None] * T[:3, 1] + T[:3, 2]).astype(np.float32)
    points = (dir_c[c] + dir_r[r]) * depth_m[r, c][:, None] + T[:3, 3].astype(np.float32)
    return points, color_HW3[color_row[r], color_col[c]]


def select_frames(frame_ids: list[int], max_frames: int) -> list[int]:
    """At most ``max_frames`` ids spread uniformly over ``frame_ids`` (all when fewer)."""
    if len(frame_ids) <= max_frames:
        return list(frame_ids)
    idx = np.unique(np.linspace(0, len(frame_ids) - 1, max_frames).round().astype(int))
    return [frame_ids[i] for i in idx]


def _check_frame_sizes(scene, frame, ck, dk) -> None:
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


def _frame_points(scene, frame_ids: list[int], stride: int, max_depth_m: float):
    """Yield ``(points_N3, colors_N3)`` in the aligned frame for each frame id."""
    for fid in frame_ids:
        frame = scene.load_frame(fid)
        ck, dk = scene.frame_intrinsics(fid)  # per frame: upright frames vary
        _check_frame_sizes(scene, frame, ck, dk)
        yield depth_to_colored_points(
            frame.depth_mm_HW,
            frame.color_HW3,
            dk,
            ck,
            scene.T_aligned_world @ frame.T_world_cam,  # = T_aligned_cam, no second read
            stride,
            max_depth_m,
        )


def fuse_scene_points(
    scene, cfg: BevConfig, stride: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All coloured aligned-frame points of a scene's frames .

    ``stride`` defaults to ``cfg.fusion_depth_stride``. Raises SceneError when the scene has
    no valid frame or no valid depth at all.
    """
    ids = select_frames(scene.frame_ids(), cfg.fusion_max_frames)
    if not ids:
        raise SceneError(scene.root, "no mesh and no frame with a valid pose: nothing to fuse")
    step = cfg.fusion_depth_stride if stride is None else stride
    batches = list(_frame_points(scene, ids, step, cfg.fusion_max_depth_m))
    points = np.concatenate([p for p, _ in batches])
    if len(points) == 0:
        raise SceneError(
            scene.root, f"no valid depth within {cfg.fusion_max_depth_m} m in {len(ids)} frames"
        )
    return points, np.concatenate([c for _, c in batches])


def render_fused_bev(scene, cfg: BevConfig) -> BevResult:
    """BEV of a scene from its RGB-D frames, in two passes over the frames.

    Pass 1 fuses a sparse sample (every ``EXTENT_STRIDE``-th pixel) to fix the floor, the cut
    and the image extent; pass 2 splats every ``cfg.fusion_depth_stride``-th pixel of each
    frame into a running z-buffer, so memory is one image however long the scan.
    """
    sample, _ = fuse_scene_points(scene, cfg, max(EXTENT_STRIDE, cfg.fusion_depth_stride))
    floor_z, ceiling_z = floor_and_ceiling(sample[:, 2], cfg)
    grid = grid_below(sample.astype(np.float64), ceiling_z, cfg)
    canvas = PointCanvas(cfg.size_px, ceiling_z)
    ids = select_frames(scene.frame_ids(), cfg.fusion_max_frames)
    for points, colors in _frame_points(
        scene, ids, cfg.fusion_depth_stride, cfg.fusion_max_depth_m
    ):
        canvas.add(grid.to_pixel(points), colors)
    image = fill_small_holes(canvas.image()[0], cfg.fusion_fill_holes)
    return BevResult(
        image, grid.world_to_pixel_33, grid.meters_per_pixel, floor_z, ceiling_z, "zbuffer",
        "fusion",
    )  # fmt: skip
