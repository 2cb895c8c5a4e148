"""Per-clip cache (ross3d_data.cache.store) and the grounding patch masks it holds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from many_scene_shards import random_clip, write_shard_folder
from ross3d_data.cache.patch_masks import (
    PatchMaskParams,
    cache_patch_masks,
    clip_arrays,
    clip_masks,
    mask_inputs,
    open_patch_masks,
    patches_in_boxes,
    read_masks,
)
from ross3d_data.cache.store import (
    ClipCacheReader,
    StaleCacheError,
    cache_path,
    fingerprint,
    write_cache,
)
from ross3d_data.core.geometry import backproject_pixels, depth_mm_to_m


def _flat_view(depth_HW: np.ndarray):
    """One camera at the origin looking down +z with fx = fy = 1, cx = cy = 0: pixel (u, v)
    at depth 1 m unprojects to (u, v, 1)."""
    K = np.array([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1]]], np.float32)
    return depth_HW[None].astype(np.uint16), K, np.eye(4, dtype=np.float32)[None]


def test_patch_masks_hand_computed():
    """2x2 grid of 2x2-pixel patches, all at z = 1 m: pixel (u, v) -> (u, v, 1)."""
    depth, K, T = _flat_view(np.full((4, 4), 1000))
    boxes = np.array(
        [
            [0.5, 0.5, 1.0, 1.0, 1.0, 1.0],  # x, y in [0, 1]: the 4 pixels of patch (0, 0)
            [0.25, 0.5, 1.0, 0.5, 1.0, 1.0],  # x in [0, 0.5]: only u = 0 -> 2 of 4 pixels
            [2.5, 2.5, 1.0, 1.0, 1.0, 0.5],  # x, y in [2, 3]: patch (1, 1)
            [9.0, 9.0, 9.0, 1.0, 1.0, 1.0],  # nowhere
        ],
        np.float32,
    )
    got = patches_in_boxes(depth, K, T, boxes, grid=2, patch_px=2, min_inside_fraction=0.5)
    want = np.zeros((4, 1, 2, 2), bool)
    want[0, 0, 0, 0] = want[1, 0, 0, 0] = want[2, 0, 1, 1] = True
    np.testing.assert_array_equal(got, want)
    strict = patches_in_boxes(depth, K, T, boxes, grid=2, patch_px=2, min_inside_fraction=0.75)
    assert strict[:, 0, 0, 0].tolist() == [True, False, False, False]


def test_patch_depth_rules_hand_computed():
    """Pixel (0, 0) has no depth: "valid" ignores it, "any" puts it at the camera centre."""
    d = np.full((4, 4), 1000)
    d[0, 0] = 0
    depth, K, T = _flat_view(d)
    near_origin = np.array([[0.0, 0.0, 0.0, 0.5, 0.5, 0.5]], np.float32)
    for rule, want in (("valid", False), ("any", True)):
        got = patches_in_boxes(depth, K, T, near_origin, 2, 2, 0.25, patch_depth=rule)
        assert bool(got[0, 0, 0, 0]) is want, rule
    in_plane = np.array([[0.5, 0.5, 1.0, 1.0, 1.0, 1.0]], np.float32)  # patch (0, 0), z = 1
    assert patches_in_boxes(depth, K, T, in_plane, 2, 2, 1.0, patch_depth="valid").sum() == 0
    assert patches_in_boxes(depth, K, T, in_plane, 2, 2, 0.75, patch_depth="valid")[0, 0, 0, 0]


def _masks_pixel_by_pixel(depth, K, T, boxes, grid, patch_px, frac, rule):
    """The mask rule without the pruning: count every pixel of every patch for every box."""
    side = grid * patch_px
    d = depth[:, :side, :side]
    xyz = backproject_pixels(depth_mm_to_m(d), K, T)  # [V, side, side, 3]
    lo = boxes[:, None, None, None, :3] - boxes[:, None, None, None, 3:] / np.float32(2)
    hi = boxes[:, None, None, None, :3] + boxes[:, None, None, None, 3:] / np.float32(2)
    inside = ((xyz >= lo) & (xyz <= hi)).all(-1)  # [K, V, side, side]
    if rule == "valid":
        inside &= d > 0
    count = inside.reshape(len(boxes), -1, grid, patch_px, grid, patch_px).sum(axis=(3, 5))
    return count >= frac * patch_px * patch_px


@pytest.mark.parametrize("rule", ["valid", "any"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_patch_pruning_is_exact(rule, seed):
    """Skipping patches whose point bounds miss a box changes nothing: the masks equal a count
    of every pixel (random poses, depth holes, fractions from a single pixel to a half)."""
    clip = random_clip("s", seed, views=4, size=64, n_boxes=12)
    inputs = mask_inputs(clip_arrays(clip))
    for frac in (1 / 196, 0.25, 0.5):
        got = patches_in_boxes(*inputs.values(), 4, 14, frac, patch_depth=rule)
        want = _masks_pixel_by_pixel(*inputs.values(), 4, 14, frac, rule)
        assert 0 < want.sum() < want.size  # a test with something to get wrong
        np.testing.assert_array_equal(got, want)


def test_patch_masks_reject_bad_input():
    depth, K, T = _flat_view(np.full((4, 4), 1000))
    box = np.zeros((1, 6), np.float32)
    with pytest.raises(ValueError, match="patch_depth must be one of"):
        patches_in_boxes(depth, K, T, box, 2, 2, 0.5, patch_depth="some")
    with pytest.raises(ValueError, match=r"min_inside_fraction must be in \(0, 1\]"):
        patches_in_boxes(depth, K, T, box, 2, 2, 0.0)
    with pytest.raises(ValueError, match="H, W >= 6"):
        patches_in_boxes(depth, K, T, box, 3, 2, 0.5)


def test_fingerprint_tracks_params_and_every_input():
    inputs = {"a": np.arange(6, dtype=np.float32), "b": np.zeros((2, 3), np.uint16)}
    base = fingerprint("k", {"x": 1}, inputs)
    assert base == fingerprint("k", {"x": 1}, {"b": inputs["b"].copy(), "a": inputs["a"].copy()})
    assert base != fingerprint("k", {"x": 2}, inputs)
    assert base != fingerprint("other", {"x": 1}, inputs)
    changed = {**inputs, "b": inputs["b"].copy()}
    changed["b"][1, 2] = 1
    assert base != fingerprint("k", {"x": 1}, changed)
    assert base != fingerprint("k", {"x": 1}, {**inputs, "a": inputs["a"].reshape(2, 3)})


@pytest.fixture
def shards(tmp_path):
    clips = [random_clip(f"scene{i:04d}_00", i, n_boxes=4 + i) for i in range(3)]
    return write_shard_folder(tmp_path / "shards", clips), clips


def test_cache_round_trip_equals_direct_computation(shards):
    folder, clips = shards
    params = PatchMaskParams(grid=4, patch_px=14)
    done = []
    path = cache_patch_masks(folder, params, progress=done.append)
    assert path == cache_path(folder, "patch_masks") and path.is_file()
    assert done == [c.scene_id for c in clips]
    reader = open_patch_masks(folder, params)
    for clip in clips:
        arrays = clip_arrays(clip)
        got = read_masks(reader, clip.scene_id, arrays)
        assert got.dtype == bool and got.shape == (len(arrays["boxes"]), 3, 4, 4)
        np.testing.assert_array_equal(got, clip_masks(mask_inputs(arrays), params))


def test_workers_write_the_same_masks(shards):
    folder, clips = shards
    params = PatchMaskParams(grid=4, patch_px=14)
    cache_patch_masks(folder, params, workers=2)
    reader = open_patch_masks(folder, params)
    for clip in clips:
        arrays = clip_arrays(clip)
        got = read_masks(reader, clip.scene_id, arrays)
        np.testing.assert_array_equal(got, clip_masks(mask_inputs(arrays), params))


def test_stale_cache_is_refused_with_the_rebuild_command(shards):
    folder, _ = shards
    params = PatchMaskParams(grid=4, patch_px=14)
    with pytest.raises(StaleCacheError, match=r"no patch_masks cache.*ross3d-data cache-clips"):
        open_patch_masks(folder, params)
    cache_patch_masks(folder, params)
    other = PatchMaskParams(grid=4, patch_px=14, min_inside_fraction=0.6)
    with pytest.raises(
        StaleCacheError, match=r"built with .*0.5.*needs.*0.6.*--min-inside-fraction 0.6"
    ):
        open_patch_masks(folder, other)
    # same keys, another build (sample config differs): refused at open
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sample"] = {"views": 3, "size": 64, "method": "max-coverage"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleCacheError, match="another shard build"):
        open_patch_masks(folder, params)


def test_changed_clip_content_is_refused_on_read(shards):
    folder, clips = shards
    params = PatchMaskParams(grid=4, patch_px=14)
    cache_patch_masks(folder, params)
    reader = open_patch_masks(folder, params)
    arrays = clip_arrays(clips[1])
    arrays["boxes"] = arrays["boxes"] + np.float32(0.01)
    with pytest.raises(StaleCacheError, match=r"scene0001_00.*changed"):
        read_masks(reader, clips[1].scene_id, arrays)


def test_missing_clip_is_refused_at_open(tmp_path):
    path = tmp_path / "c.h5"
    write_cache(path, "k", {"p": 1}, "src", [("a", "f", {"x": np.zeros(2)})])
    with pytest.raises(StaleCacheError, match=r"1 clips missing.*'b'.*REBUILD"):
        ClipCacheReader(path, "k", {"p": 1}, "src", ["a", "b"], "REBUILD")
    reader = ClipCacheReader(path, "k", {"p": 1}, "src", ["a"], "REBUILD")
    with pytest.raises(StaleCacheError, match="no entry for clip 'b'"):
        reader.read("b", {})


def test_cache_clips_cli(shards):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    folder, clips = shards
    runner = CliRunner()
    args = ["cache-clips", str(folder), "--grid", "4", "--patch-depth", "valid", "-j", "2"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    params = PatchMaskParams(grid=4, patch_px=14, patch_depth="valid")
    got = read_masks(open_patch_masks(folder, params), clips[0].scene_id, clip_arrays(clips[0]))
    np.testing.assert_array_equal(got, clip_masks(mask_inputs(clip_arrays(clips[0])), params))
    r = runner.invoke(app, ["cache-clips", str(folder), "--patch-depth", "some"])
    assert r.exit_code == 2 and "'some' is not one of 'any'," in r.output and "'valid'" in r.output
    r = runner.invoke(app, ["cache-clips", str(folder.parent / "nope")])
    assert r.exit_code == 2 and "no manifest" in r.output
