"""Upright views and room yaw: pure numpy rotations that keep the geometry exact.

Upright frames: hand-held captures (ARKitScenes, 3RScan) store each frame in the sensor's
orientation, so many images are rotated by 90, 180 or 270 degrees. ``upright_turns`` decides the
turn from the camera-to-world pose as ARKitScenes' ``threedod/benchmark_scripts/rectify_im.py``
``decide_pose`` does, and ``rotate_image_upright`` turns an image as its ``rotate_pose`` does
(cv2 ``ROTATE_90_CLOCKWISE`` / ``ROTATE_180`` / ``ROTATE_90_COUNTERCLOCKWISE``). The official
code rotates only the pixels; here the intrinsics and the pose turn with them, so every pixel
back-projects to the same world point before and after (pixel centres at integer coordinates,
OpenCV camera axes, as in ``core.geometry``).

Room yaw: a Z-up scan that is not room-aligned is turned about z by the dominant horizontal
direction of its wall normals (``dominant_wall_yaw``), so BEV images show walls along the axes.
"""

from __future__ import annotations

import numpy as np

from ross3d_data.core.records import Intrinsics

# decide_pose's rows: which camera axis must point down (world -Z) for each turn
_DOWN_AXIS_ROWS_43 = np.array([[0, -1, 0], [-1, 0, 0], [0, 1, 0], [1, 0, 0]], np.float64)
# np.rot90's k for each turn: 0 none, 1 = 90 deg clockwise, 2 = 180 deg, 3 = 90 deg anticlockwise
_ROT90_K = (0, -1, 2, 1)
TURN_NAMES = ("upright", "90 cw", "180", "90 ccw")


def upright_turns(T_world_cam_44: np.ndarray) -> int:
    """How to turn a frame upright: 0 none, 1 = 90 deg clockwise, 2 = 180, 3 = 90 deg
    anticlockwise (``rectify_im.decide_pose``: the camera axis pointing most to world -Z must
    become the image's down axis +y; the world must be Z up)."""
    T = np.asarray(T_world_cam_44, np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"expected a 4x4 pose, got {T.shape}")
    z_of_cam_axes_3 = T[2, :3]  # world-z component of the camera's x, y, z axes
    return int(np.argmax(_DOWN_AXIS_ROWS_43 @ z_of_cam_axes_3))


def _check_turns(turns: int) -> int:
    if turns not in (0, 1, 2, 3):
        raise ValueError(f"turns must be 0, 1, 2 or 3, got {turns!r}")
    return turns


def rotate_image_upright(image_HW_or_HWC: np.ndarray, turns: int) -> np.ndarray:
    """The image turned by ``turns`` (see ``upright_turns``); a contiguous copy (H and W swap
    for odd turns). Works for (H, W) depth and (H, W, C) colour alike."""
    k = _ROT90_K[_check_turns(turns)]
    return np.ascontiguousarray(np.rot90(image_HW_or_HWC, k, axes=(0, 1)))


def camera_turn_33(turns: int) -> np.ndarray:
    """``Q``: new camera coordinates = ``Q @`` old camera coordinates for a turned image.

    90 deg clockwise maps pixel (u, v) to (H-1-v, u), i.e. camera (x, y, z) to (-y, x, z).
    """
    q = {0: np.eye(3), 1: [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
         2: np.diag([-1.0, -1.0, 1.0]), 3: [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]}  # fmt: skip
    return np.asarray(q[_check_turns(turns)], np.float64)


def rotate_pose_upright(T_world_cam_44: np.ndarray, turns: int) -> np.ndarray:
    """Camera-to-world pose of the turned image: ``T @ blockdiag(Q^T, 1)`` (same centre)."""
    T_cam_newcam = np.eye(4)
    T_cam_newcam[:3, :3] = camera_turn_33(turns).T
    return np.asarray(T_world_cam_44, np.float64) @ T_cam_newcam


def rotate_intrinsics_upright(K: Intrinsics, turns: int) -> Intrinsics:
    """Intrinsics of the turned image (integer pixel centres: a W-wide row spans 0..W-1)."""
    w, h = K.width, K.height
    if _check_turns(turns) == 0:
        return K
    if turns == 1:  # (u, v) -> (H-1-v, u)
        return Intrinsics(K.fy, K.fx, h - 1 - K.cy, K.cx, h, w)
    if turns == 2:  # (u, v) -> (W-1-u, H-1-v)
        return Intrinsics(K.fx, K.fy, w - 1 - K.cx, h - 1 - K.cy, w, h)
    return Intrinsics(K.fy, K.fx, K.cy, w - 1 - K.cx, h, w)  # (u, v) -> (v, W-1-u)


def yaw_rotation_44(yaw_rad: float) -> np.ndarray:
    """4x4 rotation about +z by ``yaw_rad`` (counter-clockwise seen from above)."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    return T


def dominant_wall_yaw(
    vertices_N3: np.ndarray,
    faces_F3: np.ndarray,
    bin_deg: float = 1.0,
    max_normal_z: float = 0.3,
) -> float | None:
    """Yaw (radians, in [-pi/4, pi/4)) of the room's dominant wall direction, modulo 90 deg.

    Faces whose unit normal has ``|n_z| <= max_normal_z`` (walls, furniture sides) vote with
    their area for ``atan2(n_y, n_x) mod 90 deg``; the peak of that histogram (``bin_deg``
    bins, circular) is refined by the area-weighted circular mean of the votes within one bin
    of it. Rotating the scan by ``-yaw`` about z puts those walls along the x/y axes. None when
    no face is vertical enough.
    """
    v = np.asarray(vertices_N3, np.float64)
    f = np.asarray(faces_F3, np.int64).reshape(-1, 3)
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # 2 * area * normal
    area2 = np.linalg.norm(cross, axis=1)
    ok = area2 > 0
    horiz = np.zeros(len(f), bool)
    horiz[ok] = np.abs(cross[ok, 2]) <= max_normal_z * area2[ok]
    if not horiz.any():
        return None
    period = np.pi / 2
    angle = np.mod(np.arctan2(cross[horiz, 1], cross[horiz, 0]), period)
    weight = np.hypot(cross[horiz, 0], cross[horiz, 1])  # 2 * area * horizontal part
    n_bins = max(4, round(90.0 / bin_deg))
    hist = np.bincount((angle / period * n_bins).astype(np.int64) % n_bins, weight, n_bins)
    peak = (np.argmax(hist) + 0.5) * period / n_bins
    # circular distance modulo 90 deg: compare angles on the 4x-wrapped circle
    near = np.abs(np.angle(np.exp(4j * (angle - peak)))) <= 4 * period / n_bins
    mean4 = np.angle(np.sum(weight[near] * np.exp(4j * angle[near])))
    yaw = mean4 / 4.0  # in (-pi/4, pi/4]
    return float(yaw - period if yaw >= np.pi / 4 else yaw)
