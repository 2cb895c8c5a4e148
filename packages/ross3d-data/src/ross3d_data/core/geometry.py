"""Pinhole camera geometry shared by views, overlap, coordinates and the loader.

Conventions (docs/contracts.md): poses are camera-to-frame 4x4 matrices (``T_aligned_cam`` maps
OpenCV camera coordinates, x right / y down / z forward, into the aligned frame); a pixel
``(u, v)`` = (column, row) has its centre at integer coordinates, so pixel ``(u, v)`` at depth
``z`` back-projects to ``z * K^-1 [u, v, 1]``. Lengths are metres unless a name says ``_mm``.

:func:`backproject_pixels` is the project's one definition of that back-projection (numpy:
data preparation needs it without torch; the model needs it only through the grounding patch
masks, which it takes from ``cache.patch_masks`` in its CPU collate); :func:`backproject_depth`
is it in float64 with invalid pixels masked (view selection, overlap).
"""

from __future__ import annotations

import numpy as np

MM_PER_M = 1000.0


def transform_points(T_44: np.ndarray, points_N3: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid/affine transform to points of shape ``(..., 3)``; returns the same shape."""
    T_44 = np.asarray(T_44)
    points = np.asarray(points_N3)
    if T_44.shape != (4, 4) or points.shape[-1] != 3:
        raise ValueError(f"expected T (4, 4) and points (..., 3), got {T_44.shape}, {points.shape}")
    # Column by column, not `@` or einsum: a (N, 3) x (3, 3) product through BLAS is slow and
    # fights other processes for cores; six fused multiply-adds per output column are not.
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    out = np.empty(points.shape, dtype=np.result_type(points, T_44, np.float32))
    for i in range(3):
        out[..., i] = T_44[i, 0] * x + T_44[i, 1] * y + T_44[i, 2] * z + T_44[i, 3]
    return out


def invert_pose(T_44: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (rotation transpose), e.g. ``T_cam_aligned``."""
    T_44 = np.asarray(T_44, dtype=np.float64)
    R_T = T_44[:3, :3].T
    out = np.eye(4)
    out[:3, :3] = R_T
    out[:3, 3] = -R_T @ T_44[:3, 3]
    return out


def is_valid_pose(T_44: np.ndarray) -> bool:
    """True when a pose is a finite 4x4 matrix (ScanNet marks lost tracking with -inf)."""
    T_44 = np.asarray(T_44)
    return T_44.shape == (4, 4) and bool(np.isfinite(T_44).all())


def check_pose(T_44: np.ndarray, name: str = "pose") -> np.ndarray:
    """``T_44`` as float64, or ValueError when it is not a finite 4x4 matrix."""
    T = np.asarray(T_44, dtype=np.float64)
    if not is_valid_pose(T):
        raise ValueError(f"{name} must be a finite 4x4 matrix (ScanNet marks lost frames -inf)")
    return T


def depth_mm_to_m(depth_mm_HW: np.ndarray) -> np.ndarray:
    """uint16 millimetres (0 = invalid) -> float32 metres (0 where invalid)."""
    return np.asarray(depth_mm_HW).astype(np.float32) / np.float32(MM_PER_M)


def backproject_pixels(
    depth_m_VHW: np.ndarray, K_V33: np.ndarray, T_aligned_cam_V44: np.ndarray
) -> np.ndarray:
    """Back-project every pixel of V depth maps: points ``[V, H, W, 3]`` in the frame of
    ``T_aligned_cam_V44``, in the float dtype of ``depth_m_VHW`` (float32 or float64).

    The one pixel-to-xyz rule of the project: pixel ``(u, v)`` (integer indices) at depth ``z``
    is ``T (z x_n, z y_n, z)`` with ``y_n = (v - cy) / fy`` and ``x_n = (u - cx - s y_n) / fx``
    (``s`` = skew, ``K^-1 [u, v, 1]``). No pixel is masked: depth 0 lands at the camera centre
    (what the public code's ``unproject`` does), NaN stays NaN. In float32 it is the public
    code's float32 arithmetic; the grounding patch masks (``cache.patch_masks``) rely on that.
    """
    depth = np.asarray(depth_m_VHW)
    if depth.ndim != 3 or depth.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"depth must be float32/float64 (V, H, W), got {depth.dtype} {depth.shape}"
        )
    dt = depth.dtype
    v_n, h, w = depth.shape
    K = np.asarray(K_V33).astype(dt)
    y_n = (np.arange(h, dtype=dt) - K[:, 1, 2, None]) / K[:, 1, 1, None]  # [V, H]
    u_c = np.arange(w, dtype=dt) - K[:, 0, 2, None]  # [V, W]
    skew = K[:, 0, 1, None, None]
    # Zero skew (every camera here) subtracts +-0: x_n is bit for bit (u - cx) / fx.
    x_n = (u_c[:, None, :] - skew * y_n[:, :, None]) / K[:, 0, 0, None, None]  # [V, H, W]
    cam = np.stack([x_n * depth, y_n[:, :, None] * depth, depth], -1).reshape(v_n, h * w, 3)
    T = np.asarray(T_aligned_cam_V44).astype(dt)
    points = np.matmul(cam, T[:, :3, :3].transpose(0, 2, 1)) + T[:, None, :3, 3]
    return points.reshape(v_n, h, w, 3)


def backproject_depth(
    depth_m_HW: np.ndarray, K_33: np.ndarray, T_aligned_cam_44: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a metric depth map into the frame of ``T_aligned_cam_44``
    (:func:`backproject_pixels` in float64, invalid pixels masked).

    Returns ``points_HW3`` (float64, NaN where invalid) and ``valid_HW`` (depth > 0 and finite).
    """
    depth = np.asarray(depth_m_HW, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    T = check_pose(T_aligned_cam_44, "T_aligned_cam")
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, np.nan)  # NaN, not 0: an invalid pixel must not look like a point
    points = backproject_pixels(z[None], np.asarray(K_33, dtype=np.float64)[None], T[None])[0]
    return points, valid


def project_points(
    points_N3: np.ndarray, K_33: np.ndarray, T_aligned_cam_44: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Project aligned-frame points into a camera.

    Returns ``uv_N2`` (pixel coordinates, NaN for points with ``z_cam <= 0``) and ``z_cam_N``
    (depth along the optical axis in metres; <= 0 means behind the camera).
    """
    K = np.asarray(K_33, dtype=np.float64)
    if K.shape != (3, 3) or not np.array_equal(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"K must be a 3x3 pinhole matrix with last row [0, 0, 1], got {K}")
    T_cam_aligned = invert_pose(check_pose(T_aligned_cam_44, "T_aligned_cam"))
    # One 3x3 map to homogeneous pixels: K's last row keeps z_cam as the third coordinate.
    homog = transform_points(
        _affine_44(K @ T_cam_aligned[:3, :3], K @ T_cam_aligned[:3, 3]), points_N3
    )
    z = homog[..., 2]
    in_front = z > 0
    uv = homog[..., :2] / np.where(in_front, z, 1.0)[..., None]
    uv[~in_front] = np.nan
    return uv, z


def _affine_44(A_33: np.ndarray, b_3: np.ndarray) -> np.ndarray:
    """4x4 affine matrix ``[[A, b], [0, 1]]``."""
    out = np.eye(4)
    out[:3, :3] = A_33
    out[:3, 3] = b_3
    return out


def resize_crop_intrinsics(
    K_33: np.ndarray, scale_x: float, scale_y: float, left: float = 0.0, top: float = 0.0
) -> np.ndarray:
    """Intrinsics after resizing an image by ``(scale_x, scale_y)`` and cropping at ``(left, top)``.

    Uses the pixel-centre convention of image resizers: an output pixel centre ``u'`` sees the
    input position ``(u' + 0.5) / scale - 0.5``.
    """
    K = np.asarray(K_33, dtype=np.float64).copy()
    K[0, 0] *= scale_x
    K[0, 1] *= scale_x
    K[1, 1] *= scale_y
    K[0, 2] = (K[0, 2] + 0.5) * scale_x - 0.5 - left
    K[1, 2] = (K[1, 2] + 0.5) * scale_y - 0.5 - top
    return K


def camera_frustum_corners(
    K_33: np.ndarray, width: int, height: int, T_aligned_cam_44: np.ndarray, depth_m: float
) -> np.ndarray:
    """Aligned-frame points ``(5, 3)``: camera centre, then the image corners at ``depth_m``
    (top-left, top-right, bottom-right, bottom-left)."""
    corners_uv = np.array(
        [[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]]
    )
    K_inv = np.linalg.inv(np.asarray(K_33, dtype=np.float64))
    rays = np.c_[corners_uv, np.ones(4)] @ K_inv.T
    points_cam = np.vstack([np.zeros(3), rays * depth_m])
    return transform_points(T_aligned_cam_44, points_cam)
