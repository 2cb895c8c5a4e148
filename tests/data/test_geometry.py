"""Known-answer tests for ross3d_data.core.geometry (pinhole back-projection and projection)."""

import numpy as np
import pytest
from ross3d_data.core.geometry import (
    backproject_depth,
    camera_frustum_corners,
    invert_pose,
    is_valid_pose,
    project_points,
    resize_crop_intrinsics,
    transform_points,
)

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def test_backproject_known_pixel_and_pose():
    depth = np.zeros((80, 100))
    depth[50, 60] = 2.0  # pixel u=60, v=50 -> camera (0.2, 0.2, 2.0)
    T = pose(rot_z(90), [1.0, 2.0, 3.0])
    points, valid = backproject_depth(depth, K, T)
    assert valid.sum() == 1 and valid[50, 60]
    # rot_z(90) maps (x, y, z) -> (-y, x, z)
    np.testing.assert_allclose(points[50, 60], [1.0 - 0.2, 2.0 + 0.2, 5.0], atol=1e-12)
    assert np.isnan(points[0, 0]).all()


def test_invalid_depth_values_are_masked():
    depth = np.array([[0.0, -1.0, np.nan, np.inf, 1.5]])
    _, valid = backproject_depth(depth, K, np.eye(4))
    assert valid.tolist() == [[False, False, False, False, True]]


def test_project_inverts_backproject_under_random_pose():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    T = pose(q, rng.normal(size=3))
    depth = rng.uniform(0.5, 4.0, size=(80, 100))
    points, valid = backproject_depth(depth, K, T)
    uv, z = project_points(points[valid], K, T)
    v, u = np.nonzero(valid)
    np.testing.assert_allclose(uv, np.c_[u, v], atol=1e-9)
    np.testing.assert_allclose(z, depth[valid], atol=1e-12)


def test_points_behind_camera_get_nan_pixels():
    uv, z = project_points(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]), K, np.eye(4))
    assert z[0] == -1.0 and np.isnan(uv[0]).all()
    np.testing.assert_allclose(uv[1], [50.0, 40.0])


def test_invert_pose_and_transform_points():
    T = pose(rot_z(30), [0.5, -1.0, 2.0])
    np.testing.assert_allclose(T @ invert_pose(T), np.eye(4), atol=1e-12)
    p = np.array([[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        transform_points(T, p), [[0.5 + np.cos(np.pi / 6), -1.0 + 0.5, 2.0]], atol=1e-12
    )
    with pytest.raises(ValueError):
        transform_points(np.eye(3), p)


def test_is_valid_pose_rejects_inf():
    bad = np.full((4, 4), -np.inf)
    assert not is_valid_pose(bad)
    assert is_valid_pose(np.eye(4))


def test_resize_crop_intrinsics_follows_pixel_centres():
    # Halving a 100 px wide image: input pixel centre 10 lies at output (10 + 0.5) / 2 - 0.5.
    K2 = resize_crop_intrinsics(K, 0.5, 0.5, left=3, top=1)
    uv, _ = project_points(np.array([[(10 - 50) / 100, (20 - 40) / 100, 1.0]]), K2, np.eye(4))
    np.testing.assert_allclose(uv[0], [(10.5 / 2 - 0.5) - 3, (20.5 / 2 - 0.5) - 1])


def test_frustum_corners_at_depth():
    corners = camera_frustum_corners(K, 100, 80, np.eye(4), depth_m=1.0)
    np.testing.assert_allclose(corners[0], [0, 0, 0])
    np.testing.assert_allclose(corners[1], [-0.505, -0.405, 1.0])
    np.testing.assert_allclose(corners[3], [0.495, 0.395, 1.0])


def test_non_finite_pose_is_an_error_not_nan_output():
    bad = np.full((4, 4), -np.inf)
    with pytest.raises(ValueError, match="finite 4x4"):
        backproject_depth(np.ones((2, 2)), K, bad)
    with pytest.raises(ValueError, match="finite 4x4"):
        project_points(np.zeros((1, 3)), K, bad)
