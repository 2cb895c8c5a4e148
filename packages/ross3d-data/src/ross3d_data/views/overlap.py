"""How much of each view the other views see (depth-checked re-projection).

A pixel of view i "is seen by" view j when its back-projected 3D point projects inside view j's
image (nearest pixel), in front of the camera, onto a valid depth pixel whose depth agrees with
the point's depth in camera j: ``|z_j - depth_j(u, v)| <= rel_tol * z_j``. The relative
tolerance (default 5 %) follows the depth sensor's error, which grows with range; it absorbs
the nearest-pixel rounding on slanted surfaces while still rejecting pixels hidden behind an
occluder (an occluder closer than 95 % of the point's depth).
"""

from __future__ import annotations

import numpy as np

from ross3d_data.core.geometry import backproject_depth, project_points


def _sample_points(
    depth_m_VHW: np.ndarray, K_V33: np.ndarray, T_aligned_cam_V44: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned points of every ``stride``-th valid pixel of every view, and their view index."""
    points, owners = [], []
    K_sub_scale = np.diag([1.0 / stride, 1.0 / stride, 1.0])
    for i, depth in enumerate(depth_m_VHW):
        sub = depth[::stride, ::stride]
        pts, valid = backproject_depth(sub, K_sub_scale @ K_V33[i], T_aligned_cam_V44[i])
        points.append(pts[valid])
        owners.append(np.full(int(valid.sum()), i))
    return np.concatenate(points), np.concatenate(owners)


def _seen_by(
    points_N3: np.ndarray,
    depth_m_HW: np.ndarray,
    K_33: np.ndarray,
    T_44: np.ndarray,
    rel_tol: float,
) -> np.ndarray:
    """bool ``(N,)``: which points a view sees (inside, in front, depth-consistent).

    ``depth_m_HW`` must hold 0 wherever the depth is invalid.
    """
    height, width = depth_m_HW.shape
    uv, z = project_points(points_N3, K_33, T_44)
    u, v = uv[:, 0], uv[:, 1]  # NaN behind the camera: every comparison below is False
    inside = (u > -0.5) & (u < width - 0.5) & (v > -0.5) & (v < height - 0.5)
    idx = np.flatnonzero(inside)
    # nearest pixel; the coordinates are > -0.5 here, so truncating u + 0.5 rounds them
    flat = (v[idx] + 0.5).astype(np.intp) * width + (u[idx] + 0.5).astype(np.intp)
    d = depth_m_HW.ravel()[flat]
    seen = np.zeros(len(points_N3), dtype=bool)
    seen[idx] = (d > 0) & (np.abs(z[idx] - d) <= rel_tol * z[idx])
    return seen


def view_overlap(
    depth_m_VHW: np.ndarray,
    K_V33: np.ndarray,
    T_aligned_cam_V44: np.ndarray,
    rel_tol: float = 0.05,
    stride: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise overlap of V views sharing one image size.

    Returns ``overlap_VV`` float32 with ``overlap[i, j]`` = fraction of view i's valid depth
    pixels seen by view j (diagonal 1), and ``coverage_V`` float32 = fraction of view i's valid
    pixels seen by at least one other view. Only every ``stride``-th row/column of view i is
    tested (the fractions are estimates from those samples); view j's depth is read at full
    resolution. A view with no valid depth gets an all-zero row (diagonal included) and
    coverage 0, and sees nothing.
    """
    depth = np.asarray(depth_m_VHW, dtype=np.float64)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0)
    K = np.asarray(K_V33, dtype=np.float64)
    T = np.asarray(T_aligned_cam_V44, dtype=np.float64)
    if depth.ndim != 3 or K.shape != (len(depth), 3, 3) or T.shape != (len(depth), 4, 4):
        raise ValueError(
            f"expected depth (V, H, W), K (V, 3, 3), T (V, 4, 4); got {depth.shape}, "
            f"{K.shape}, {T.shape}"
        )
    if len(depth) == 0:
        raise ValueError("view_overlap needs at least one view")
    if stride < 1 or rel_tol < 0:
        raise ValueError(f"need stride >= 1 and rel_tol >= 0, got {stride}, {rel_tol}")
    n_views = len(depth)
    points, owners = _sample_points(depth, K, T, stride)
    counts = np.bincount(owners, minlength=n_views)
    seen_NV = np.zeros((len(points), n_views), dtype=bool)
    for j in range(n_views):
        seen_NV[:, j] = _seen_by(points, depth[j], K[j], T[j], rel_tol)
    seen_NV[np.arange(len(points)), owners] = False  # not "another" view; diagonal set below
    ends = np.cumsum(counts)
    seen_counts = np.stack(
        [seen_NV[end - c : end].sum(axis=0) for c, end in zip(counts, ends, strict=True)]
    )
    any_other = np.bincount(owners, weights=seen_NV.any(axis=1), minlength=n_views)
    denom = np.maximum(counts, 1)
    overlap = (seen_counts / denom[:, None]).astype(np.float32)
    overlap[np.diag_indices(n_views)] = (counts > 0).astype(np.float32)
    coverage = (any_other / denom).astype(np.float32)
    return overlap, coverage
