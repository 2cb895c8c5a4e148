"""Known-answer tests for view selection (uniform and greedy maximum coverage)."""

import numpy as np
import pytest
from ross3d_data.views.selection import (
    choose_views,
    frame_voxels,
    select_max_coverage,
    select_uniform,
    voxel_keys,
    voxel_keys_to_indices,
)


def test_uniform_follows_linspace_truncation():
    ids = list(range(0, 100, 10))  # 10 frames
    assert select_uniform(ids, 4) == [0, 30, 60, 90]
    assert select_uniform(ids, 3) == [0, 40, 90]  # linspace 4.5 truncates to 4
    n, count = 157, 32
    expected = [int(np.floor(i * (n - 1) / (count - 1))) for i in range(count)]
    assert select_uniform(range(n), count) == expected


def test_uniform_repeats_when_frames_are_scarce():
    assert select_uniform([7, 8, 9], 5) == [7, 7, 8, 8, 9]
    assert select_uniform([4], 3) == [4, 4, 4]


def test_uniform_rejects_bad_input():
    with pytest.raises(ValueError, match="no valid frames"):
        select_uniform([], 4)
    with pytest.raises(ValueError, match="count"):
        select_uniform([1, 2], 0)


def test_voxel_keys_round_and_unpack():
    pts = np.array([[0.149, -0.26, 1.0], [0.151, 0.0, 0.0], [0.14, -0.25, 1.04]])
    keys = voxel_keys(pts, 0.1)
    idx = voxel_keys_to_indices(keys)
    assert sorted(map(tuple, idx.tolist())) == [(1, -3, 10), (1, -2, 10), (2, 0, 0)]
    with pytest.raises(ValueError, match="too far"):
        voxel_keys(np.array([[1e6, 0, 0]]), 0.1)


def test_frame_voxels_of_a_wall():
    # 40x40 depth at 2 m, fx = 200: the wall spans x, y in [-0.195, 0.195] m at z = 2.
    K = np.array([[200.0, 0, 19.5], [0, 200.0, 19.5], [0, 0, 1]])
    T = np.eye(4)
    T[:3, 3] = [10.0, 0.0, 0.0]
    keys = frame_voxels(np.full((40, 40), 2000, np.uint16), K, T, voxel_size=0.1, stride=1)
    idx = voxel_keys_to_indices(keys)
    assert set(idx[:, 2].tolist()) == {20}
    assert sorted(set(idx[:, 0].tolist())) == [98, 99, 100, 101, 102]
    assert sorted(set(idx[:, 1].tolist())) == [-2, -1, 0, 1, 2]
    assert len(keys) == 25
    strided = frame_voxels(np.full((40, 40), 2000, np.uint16), K, T, voxel_size=0.1, stride=4)
    assert set(strided.tolist()) <= set(keys.tolist()) and len(strided) >= 16


def test_frame_voxels_of_empty_depth_is_empty():
    K = np.array([[200.0, 0, 19.5], [0, 200.0, 19.5], [0, 0, 1]])
    assert frame_voxels(np.zeros((40, 40), np.uint16), K, np.eye(4)).size == 0


def test_max_coverage_greedy_order_with_reset():
    sets = [
        np.array([1, 2, 3]),  # A
        np.array([3, 4]),  # B
        np.array([5, 6, 7, 8]),  # C
        np.array([1, 2, 3, 4, 5]),  # D
    ]
    # D adds 5; then C adds 3 (6, 7, 8), A and B add 0 -> reset; A adds 3, then B adds 1.
    assert select_max_coverage(sets, 4) == [3, 2, 0, 1]
    assert select_max_coverage(sets, 2) == [3, 2]


def test_max_coverage_ties_go_to_lowest_index_and_empty_frames_last():
    sets = [np.array([], np.int64), np.array([9, 8]), np.array([8, 9]), np.array([1])]
    assert select_max_coverage(sets, 10) == [1, 3, 2, 0]
    assert select_max_coverage([], 3) == []
    with pytest.raises(ValueError):
        select_max_coverage(sets, 0)


def _covered(scene, frame_ids, voxel_size=0.1):
    K = scene.depth_intrinsics.K_33
    keys = [
        frame_voxels(scene.load_frame(f).depth_mm_HW, K, scene.T_aligned_cam(f), voxel_size)
        for f in frame_ids
    ]
    return len(np.unique(np.concatenate(keys)))


def test_choose_views_skips_invalid_poses(tiny_scene):
    from ross3d_data.datasets import load_scene

    scene = load_scene(tiny_scene(n_frames=6, invalid=(2,)).path)  # frames from the .sens
    assert scene.frame_ids() == [0, 1, 3, 4, 5]
    assert choose_views(scene, 3, "uniform") == [0, 3, 5]
    picks = choose_views(scene, 3, "max-coverage")
    assert len(set(picks)) == 3 and set(picks) <= {0, 1, 3, 4, 5} and picks == sorted(picks)
    # fewer valid frames than views: both methods give every frame, repeated as linspace does
    assert choose_views(scene, 7, "max-coverage") == choose_views(scene, 7) == [0, 0, 1, 3, 3, 4, 5]
    with pytest.raises(ValueError, match="unknown view method"):
        choose_views(scene, 3, "random")
    # candidates thinned uniformly first: linspace picks [0, 3, 5] of the five valid frames
    assert set(choose_views(scene, 2, "max-coverage", max_candidates=3)) <= {0, 3, 5}
    with pytest.raises(ValueError, match="max_candidates"):
        choose_views(scene, 4, "max-coverage", max_candidates=3)


def test_max_coverage_covers_more_than_uniform_on_a_demo_room(demo_scenes):
    from ross3d_data.datasets import load_scene

    scene = load_scene(demo_scenes[0])
    uniform = choose_views(scene, 6, "uniform")
    greedy = choose_views(scene, 6, "max-coverage")
    assert len(set(greedy)) == 6 and set(greedy) <= set(scene.frame_ids())
    assert _covered(scene, greedy) > _covered(scene, uniform)
