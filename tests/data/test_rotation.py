"""core.rotation: upright turns from known poses, exact geometry after turning, room yaw."""

from __future__ import annotations

import numpy as np
import pytest
from ross3d_data.core.geometry import backproject_depth
from ross3d_data.core.records import Intrinsics
from ross3d_data.core.rotation import (
    dominant_wall_yaw,
    rotate_image_upright,
    rotate_intrinsics_upright,
    rotate_pose_upright,
    upright_turns,
    yaw_rotation_44,
)
from ross3d_data.synthetic.scenes import build_room, demo_layout

# A camera at (1, 2, 1.5) looking along world +Y; its x / y axes for each stored orientation
# (x cross y = +Y always). turns 1: x points down, the image needs 90 deg clockwise.
AXES_XY = {
    0: ((1, 0, 0), (0, 0, -1)),
    1: ((0, 0, -1), (-1, 0, 0)),
    2: ((-1, 0, 0), (0, 0, 1)),
    3: ((0, 0, 1), (1, 0, 0)),
}


def camera(turns: int, tilt_deg: float = 0.0) -> np.ndarray:
    x, y = (np.asarray(a, np.float64) for a in AXES_XY[turns])
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, np.cross(x, y)], 1)
    a = np.deg2rad(tilt_deg)  # pitch down about world x: still decided by the same axis
    pitch = np.array([[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])
    T[:3, :3] = pitch @ T[:3, :3]
    T[:3, 3] = (1.0, 2.0, 1.5)
    return T


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("tilt", [0.0, 35.0, -20.0])
def test_upright_turns_of_known_poses_and_turned_pose_is_upright(turns, tilt):
    T = camera(turns, tilt)
    assert upright_turns(T) == turns
    T_up = rotate_pose_upright(T, turns)
    assert upright_turns(T_up) == 0
    np.testing.assert_allclose(T_up, camera(0, tilt), atol=1e-12)  # same camera, upright axes


def test_images_turn_as_cv2_rotate_flags():
    img = np.arange(6).reshape(2, 3)
    assert rotate_image_upright(img, 0).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert rotate_image_upright(img, 1).tolist() == [[3, 0], [4, 1], [5, 2]]  # clockwise
    assert rotate_image_upright(img, 2).tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_image_upright(img, 3).tolist() == [[2, 5], [1, 4], [0, 3]]  # anticlockwise
    rgb = np.stack([img, img + 10, img + 20], -1)
    assert rotate_image_upright(rgb, 1)[..., 2].tolist() == [[23, 20], [24, 21], [25, 22]]
    with pytest.raises(ValueError, match="turns"):
        rotate_image_upright(img, 4)


def test_intrinsics_of_turned_images_by_hand():
    K = Intrinsics(10.0, 20.0, 1.2, 0.7, 4, 3)  # W = 4, H = 3
    assert rotate_intrinsics_upright(K, 0) == K
    assert rotate_intrinsics_upright(K, 1) == Intrinsics(20.0, 10.0, 3 - 1 - 0.7, 1.2, 3, 4)
    assert rotate_intrinsics_upright(K, 2) == Intrinsics(10.0, 20.0, 4 - 1 - 1.2, 3 - 1 - 0.7, 4, 3)
    assert rotate_intrinsics_upright(K, 3) == Intrinsics(20.0, 10.0, 0.7, 4 - 1 - 1.2, 3, 4)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_turned_frame_back_projects_to_the_same_points(turns):
    rng = np.random.default_rng(turns)
    K = Intrinsics(50.0, 55.0, 23.3, 17.9, 48, 36)
    depth = rng.uniform(0.5, 4.0, (K.height, K.width))
    depth[3, 5] = 0.0  # an invalid pixel stays invalid
    T = camera(turns, 12.0)
    raw, valid = backproject_depth(depth, K.K_33, T)
    K2 = rotate_intrinsics_upright(K, turns)
    depth2 = rotate_image_upright(depth, turns)
    assert depth2.shape == (K2.height, K2.width)
    pts, valid2 = backproject_depth(depth2, K2.K_33, rotate_pose_upright(T, turns))
    assert np.array_equal(valid2, rotate_image_upright(valid, turns)) and (~valid2).sum() == 1
    np.testing.assert_allclose(pts[valid2], rotate_image_upright(raw, turns)[valid2], atol=1e-9)


@pytest.mark.parametrize(("yaw_deg", "expect_deg"), [(117.0, 27.0), (-40.0, -40.0), (0.0, 0.0)])
def test_dominant_wall_yaw_of_a_rotated_room(yaw_deg, expect_deg):
    mesh = build_room(demo_layout(0), np.random.default_rng(0))[0]
    rotated = mesh.transformed(yaw_rotation_44(np.deg2rad(yaw_deg)))
    yaw = dominant_wall_yaw(rotated.vertices_N3, rotated.faces_F3)
    assert abs(np.rad2deg(yaw) - expect_deg) < 0.05


def test_dominant_wall_yaw_without_walls_is_none():
    floor = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.05]], np.float32)
    assert dominant_wall_yaw(floor, np.array([[0, 1, 2], [1, 3, 2]])) is None
