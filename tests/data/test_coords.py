"""Known-answer tests for per-view preparation and token coordinates."""

import numpy as np
import pytest
from ross3d_data.core.geometry import backproject_pixels, depth_mm_to_m
from ross3d_data.core.records import Intrinsics
from ross3d_data.views.coords import (
    camera_centre_fill,
    prepare_view,
    resample_depth,
    token_coordinates,
)

S, CROP, G, CELL = 384, 378, 14, 27
K_CROP = np.array([[300.0, 0, 191.5], [0, 300.0, 191.5], [0, 0, 1]])


def pose_rz90(t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    T[:3, 3] = t
    return T


def expected_plane_cell(row: int, col: int, depth_m: float, T: np.ndarray, u=None, v=None):
    """Aligned xyz of the mean pixel of a cell on a fronto-parallel plane (linear in u, v)."""
    u = col * CELL + 13 if u is None else u
    v = row * CELL + 13 if v is None else v
    p_cam = np.array([(u - 191.5) * depth_m / 300, (v - 191.5) * depth_m / 300, depth_m])
    return T[:3, :3] @ p_cam + T[:3, 3]


def test_plane_at_known_depth_and_pose():
    T = pose_rz90([1.0, 2.0, 0.5])
    coords, valid = token_coordinates(np.full((S, S), 2500, np.uint16), K_CROP, T)
    assert coords.shape == (G, G, 3) and coords.dtype == np.float32 and valid.all()
    for r, c in [(0, 0), (0, 13), (7, 3), (13, 13)]:
        np.testing.assert_allclose(coords[r, c], expected_plane_cell(r, c, 2.5, T), atol=1e-5)
    # Cell (0, 0) covers pixels 0..26: x_cam = (13 - 191.5) * 2.5 / 300 -> aligned y = 2 + x_cam.
    assert coords[0, 0, 1] == pytest.approx(2.0 + (13 - 191.5) * 2.5 / 300, abs=1e-5)


def test_invalid_pixels_are_excluded_and_empty_cells_flagged():
    depth = np.full((S, S), 2000, np.uint16)
    depth[0:CELL, 1:CELL] = 0  # cell (0, 0): only column u = 0 stays valid
    depth[CELL : 2 * CELL, CELL : 2 * CELL] = 0  # cell (1, 1): nothing valid
    depth[CROP:, :] = 0  # outside the 378 crop: must not matter
    T = np.eye(4)
    coords, valid = token_coordinates(depth, K_CROP, T)
    np.testing.assert_allclose(coords[0, 0], expected_plane_cell(0, 0, 2.0, T, u=0), atol=1e-5)
    assert not valid[1, 1] and np.all(coords[1, 1] == 0)
    assert valid.sum() == G * G - 1
    np.testing.assert_allclose(coords[13, 5], expected_plane_cell(13, 5, 2.0, T), atol=1e-5)


def test_other_grid_and_bad_grid():
    coords, valid = token_coordinates(np.full((S, S), 1000, np.uint16), K_CROP, np.eye(4), 384, 4)
    assert coords.shape == (4, 4, 3) and valid.all()
    assert coords[0, 0, 0] == pytest.approx((47.5 - 191.5) / 300, abs=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        token_coordinates(np.ones((S, S), np.uint16), K_CROP, np.eye(4), 378, 15)


def test_empty_depth_gives_all_invalid_grid():
    coords, valid = token_coordinates(np.zeros((S, S), np.uint16), K_CROP, np.eye(4))
    assert not valid.any() and not coords.any()


COLOR_K = Intrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5, width=640, height=480)
DEPTH_K = Intrinsics(fx=250.0, fy=250.0, cx=159.5, cy=119.5, width=320, height=240)


def test_prepare_view_resize_crop_and_registered_depth():
    cols = np.arange(640, dtype=np.float64)
    color = np.zeros((480, 640, 3), np.uint8)
    color[..., 0] = np.round(cols * 255 / 639).astype(np.uint8)
    depth = np.tile(1000 + np.arange(320, dtype=np.uint16), (240, 1))  # depth encodes its column
    view = prepare_view(color, depth, COLOR_K, DEPTH_K, np.eye(4))
    # 640x480 -> 512x384 (scale 0.8), crop columns 64..447.
    np.testing.assert_allclose(
        view.K_crop_33, [[400, 0, (319.5 + 0.5) * 0.8 - 0.5 - 64], [0, 400, 191.5], [0, 0, 1]]
    )
    assert view.image_SS3.shape == (S, S, 3) and view.image_SS3.dtype == np.uint8
    # crop pixel u shows source column (u + 64 + 0.5) / 0.8 - 0.5
    for u in (0, 100, 383):
        src = (u + 64.5) / 0.8 - 0.5
        assert abs(int(view.image_SS3[200, u, 0]) - src * 255 / 639) <= 1.5
    # crop pixel u reads depth column rint(250 * (u - 191.5) / 400 + 159.5)
    assert view.depth_mm_SS.dtype == np.uint16
    assert view.depth_mm_SS[0, 0] == 1000 + 40 and view.depth_mm_SS[0, 383] == 1000 + 279
    assert view.depth_mm_SS[100, 192] == 1000 + round(250 * 0.5 / 400 + 159.5)


def test_prepare_view_coords_match_plane():
    color = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((240, 320), 3000, np.uint16)
    T = pose_rz90([0.0, 0.0, 1.0])
    view = prepare_view(color, depth, COLOR_K, DEPTH_K, T)
    assert view.coords_valid_GG.all()
    u = 4 * CELL + 13
    expected_cam = np.array([(u - 191.5) * 3 / 400, (u - 191.5) * 3 / 400, 3.0])
    np.testing.assert_allclose(
        view.coords_GG3[4, 4], T[:3, :3] @ expected_cam + T[:3, 3], atol=1e-5
    )


def test_depth_outside_the_depth_image_is_invalid():
    # Depth camera with a narrower view: crop pixels beyond its image get 0.
    narrow = Intrinsics(fx=500.0, fy=500.0, cx=159.5, cy=119.5, width=320, height=240)
    out = resample_depth(np.full((240, 320), 1234, np.uint16), narrow.K_33, K_CROP, S)
    assert out[191, 191] == 1234 and out[0, 0] == 0 and out[191, 0] == 0


def test_prepare_view_rejects_mismatches():
    color = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="depth image"):
        prepare_view(color, np.zeros((480, 640), np.uint16), COLOR_K, DEPTH_K, np.eye(4))
    with pytest.raises(ValueError, match="colour image"):
        prepare_view(color[:10], np.zeros((240, 320), np.uint16), COLOR_K, DEPTH_K, np.eye(4))


def test_portrait_view_is_cropped_about_its_centre_rows():
    """480x640 portrait (upright hand-held frames): width 384 (scale 0.8), height 512, rows
    64..447 kept, so cx' = 240 * 0.8 - 0.5 and cy' = 320 * 0.8 - 0.5 - 64."""
    K = Intrinsics(fx=500.0, fy=500.0, cx=239.5, cy=319.5, width=480, height=640)
    color = np.zeros((640, 480, 3), np.uint8)
    color[..., 0] = np.round(np.arange(640) * 0.25)[:, None]  # red = row / 4
    view = prepare_view(color, np.full((640, 480), 2000, np.uint16), K, K, np.eye(4))
    np.testing.assert_allclose(view.K_crop_33, [[400, 0, 191.5], [0, 400, 191.5], [0, 0, 1]])
    # crop row r shows source row (r + 64 + 0.5) / 0.8 - 0.5: 80.125 at the top, 559.5 at the bottom
    red = view.image_SS3[..., 0].astype(float)
    assert abs(red[0].mean() - 80.125 / 4) < 1 and abs(red[-1].mean() - 559.5 / 4) < 1
    assert view.coords_valid_GG.all()


def test_real_tum_views_land_on_the_fused_point_cloud(real_data):
    """Prepared depth + K_crop + pose put every pixel on the scene: checks the whole chain."""
    trimesh = pytest.importorskip("trimesh")
    from ross3d_data.core.geometry import backproject_depth, depth_mm_to_m
    from ross3d_data.datasets import load_scene
    from ross3d_data.views.overlap import view_overlap
    from scipy.spatial import cKDTree

    path = real_data
    scene = load_scene(path)
    # The fused cloud (3 cm voxels) was built from depth < 4 m only.
    tree = cKDTree(np.asarray(trimesh.load(path / "scene_fused_pointcloud.ply").vertices))
    frame_ids = scene.frame_ids()[::6]
    views = []
    for fid in frame_ids:
        frame = scene.load_frame(fid)
        T = scene.T_aligned_cam(fid)
        view = prepare_view(
            frame.color_HW3, frame.depth_mm_HW, scene.color_intrinsics, scene.depth_intrinsics, T
        )
        views.append(view)
        depth_m = depth_mm_to_m(view.depth_mm_SS)
        points, valid = backproject_depth(depth_m, view.K_crop_33, T)
        near = valid & (depth_m < 3.9)
        dist, _ = tree.query(points[near][::7])
        assert np.mean(dist < 0.05) > 0.99, f"frame {fid}: pixels off the fused cloud"
        assert view.coords_valid_GG.mean() > 0.9
    overlap, coverage = view_overlap(
        np.stack([depth_mm_to_m(v.depth_mm_SS) for v in views]),
        np.stack([v.K_crop_33 for v in views]),
        np.stack([scene.T_aligned_cam(f) for f in frame_ids]),
    )
    # Neighbouring views (6 frames = 2 s apart) share much more than the two ends of the clip.
    assert all(overlap[i, i + 1] > 0.25 for i in range(len(views) - 1))
    assert overlap[0, -1] < overlap[0, 1]
    # Seen by any other view: at least the best single view, at most their sum.
    off_diag = overlap - np.diag(np.diag(overlap))
    assert (coverage >= off_diag.max(axis=1) - 1e-6).all()
    assert (coverage <= off_diag.sum(axis=1) + 1e-6).all()


def test_token_coordinates_rejects_bad_pose():
    with pytest.raises(ValueError, match="finite"):
        token_coordinates(np.ones((S, S), np.uint16), K_CROP, np.full((4, 4), np.nan))


def test_camera_centre_fill_by_hand():
    """2x2 cells of 2x2 px: cell shares of valid depth 1, 1/2, 0, 1/4; the public code averages
    every pixel, an invalid one at the camera centre (1, 2, 3)."""
    depth = np.zeros((1, 4, 4), np.uint16)
    depth[0, 0:2, 0:2] = 1000  # cell (0, 0): all valid
    depth[0, 0, 2:4] = 1000  # cell (0, 1): 2 of 4
    depth[0, 2, 2] = 1000  # cell (1, 1): 1 of 4; cell (1, 0): none
    T = np.eye(4)[None].copy()
    T[0, :3, 3] = [1.0, 2.0, 3.0]
    a, b, d = np.array([5.0, 5, 5]), np.array([7.0, 9, 11]), np.array([3.0, 2, 1])
    coords = np.array([[a, b], [np.zeros(3), d]])[None]
    got = camera_centre_fill(coords, depth, T, crop=4)[0]
    c = np.array([1.0, 2.0, 3.0])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0, 0], a)
    np.testing.assert_allclose(got[0, 1], 0.5 * b + 0.5 * c)
    np.testing.assert_allclose(got[1, 0], c)
    np.testing.assert_allclose(got[1, 1], 0.25 * d + 0.75 * c)


def test_camera_centre_fill_equals_the_public_all_pixel_average():
    """token_coordinates' valid-pixel cell means + the fill == Ross3D's `unproject`
    (video_utils.py ~39-69: z = depth / 1000, invalid depth -> the camera centre) averaged over
    27x27-px cells of the top-left 378 px (`average_coordinate_in_patch`, ross3d_arch.py
    ~341-351), computed here pixel by pixel."""
    rng = np.random.default_rng(0)
    depth = rng.integers(500, 4000, (S, S)).astype(np.uint16)
    depth[rng.random((S, S)) < 0.3] = 0
    depth[:CELL, :CELL] = 0  # one cell with no valid pixel
    K = np.array([[300.0, 0.0, 190.0], [0.0, 310.0, 195.0], [0.0, 0.0, 1.0]])
    T = np.eye(4)
    T[:3, :3] = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]).T
    T[:3, 3] = [1.5, -2.0, 1.2]
    pixels = backproject_pixels(depth_mm_to_m(depth[None]), K[None], T[None])[0, :CROP, :CROP]
    public = pixels.astype(np.float64).reshape(G, CELL, G, CELL, 3).mean(axis=(1, 3))
    ours, _ = token_coordinates(depth, K, T)
    got = camera_centre_fill(ours, depth, T, crop=CROP)
    np.testing.assert_allclose(got, public, atol=1e-4)
    np.testing.assert_allclose(got[0, 0], T[:3, 3], atol=1e-6)  # no depth: the camera centre


def test_camera_centre_fill_rejects_a_crop_off_the_grid():
    with pytest.raises(ValueError, match="multiple of G"):
        camera_centre_fill(np.zeros((G, G, 3)), np.ones((S, S), np.uint16), np.eye(4), 377)
