"""Known-answer tests for view overlap: a wall seen by two sideways-shifted cameras.

Cameras look along +z (identity rotation, aligned frame = camera frame), fx = fy = 100,
cx = 49.5, 100 px wide: at the wall (z = 2 m) one pixel is 2 cm, so a 0.5 m shift moves
the wall image by exactly 25 px.
"""

import numpy as np
import pytest
from ross3d_data.views.overlap import view_overlap

W, H, FX, CX = 100, 6, 100.0, 49.5
K = np.array([[FX, 0, CX], [0, FX, (H - 1) / 2], [0, 0, 1]])


def camera_at(x: float) -> np.ndarray:
    T = np.eye(4)
    T[0, 3] = x
    return T


def render(cam_x: float, occluder: tuple[float, float] | None = None) -> np.ndarray:
    """Depth of a wall at z = 2 and an optional strip x in occluder at z = 1 (infinite in y)."""
    u = np.arange(W, dtype=np.float64)
    depth = np.full(W, 2.0)
    if occluder is not None:
        x_at_1m = cam_x + (u - CX) / FX
        depth[(x_at_1m >= occluder[0]) & (x_at_1m <= occluder[1])] = 1.0
    return np.tile(depth, (H, 1))


def run(depths, xs, **kw):
    T = np.stack([camera_at(x) for x in xs])
    return view_overlap(np.stack(depths), np.stack([K] * len(xs)), T, **kw)


def test_shifted_wall_overlap_is_three_quarters():
    # View 0 pixel u lands on view 1 pixel u - 25: columns 25..99 are seen (75 %).
    overlap, coverage = run([render(0.0), render(0.5)], [0.0, 0.5], stride=1)
    np.testing.assert_allclose(overlap, [[1.0, 0.75], [0.75, 1.0]], atol=1e-6)
    np.testing.assert_allclose(coverage, [0.75, 0.75], atol=1e-6)
    assert overlap.dtype == np.float32 and coverage.dtype == np.float32


def test_stride_subsampling_gives_the_same_fraction_here():
    overlap, _ = run([render(0.0), render(0.5)], [0.0, 0.5], stride=5)
    np.testing.assert_allclose(overlap[0, 1], 0.75, atol=1e-6)


def test_occluder_rejects_hidden_pixels():
    # Strip x in [0.2, 0.4] at z = 1. View 0 sees it in columns 70..89 (all seen by view 1,
    # which sees them at 20..39). View 0's wall columns 45..64 are hidden from view 1 behind the
    # strip. Seen: 25..44 (20) + 65..69 (5) + 70..89 (20) + 90..99 (10) = 55 of 100.
    strip = (0.2, 0.4)
    overlap, coverage = run([render(0.0, strip), render(0.5, strip)], [0.0, 0.5], stride=1)
    np.testing.assert_allclose(overlap[0, 1], 0.55, atol=1e-6)
    np.testing.assert_allclose(coverage[0], 0.55, atol=1e-6)


def test_coverage_is_union_over_other_views():
    # View 0 at x = 0; view 1 at +0.5 sees columns 25..99 of it; view 2 at -0.5 sees 0..74.
    depths = [render(0.0), render(0.5), render(-0.5)]
    overlap, coverage = run(depths, [0.0, 0.5, -0.5], stride=1)
    np.testing.assert_allclose(overlap[0], [1.0, 0.75, 0.75], atol=1e-6)
    np.testing.assert_allclose(overlap[1, 2], 0.5, atol=1e-6)  # 1 m apart: half the width
    np.testing.assert_allclose(coverage, [1.0, 0.75, 0.75], atol=1e-6)


def test_relative_depth_tolerance():
    far = render(0.5) * 1.04
    overlap, _ = run([render(0.0), far], [0.0, 0.5], stride=1, rel_tol=0.05)
    assert overlap[0, 1] == pytest.approx(0.75)
    farther = render(0.5) * 1.06
    overlap, _ = run([render(0.0), farther], [0.0, 0.5], stride=1, rel_tol=0.05)
    assert overlap[0, 1] == 0.0


def test_empty_depth_view_has_zero_row_and_column():
    empty = np.zeros((H, W))
    overlap, coverage = run([render(0.0), empty, render(0.5)], [0.0, 0.25, 0.5], stride=1)
    np.testing.assert_array_equal(overlap[1], [0, 0, 0])
    np.testing.assert_array_equal(overlap[:, 1], [0, 0, 0])
    assert coverage[1] == 0.0
    np.testing.assert_allclose(overlap[0, 2], 0.75, atol=1e-6)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected depth"):
        view_overlap(np.zeros((2, H, W)), np.stack([K] * 3), np.stack([np.eye(4)] * 2))


def test_single_view_and_bad_pose():
    overlap, coverage = run([render(0.0)], [0.0], stride=2)
    assert overlap.tolist() == [[1.0]] and coverage.tolist() == [0.0]
    T = np.stack([camera_at(0.0), np.full((4, 4), -np.inf)])
    with pytest.raises(ValueError, match="finite"):
        view_overlap(np.stack([render(0.0)] * 2), np.stack([K] * 2), T)
