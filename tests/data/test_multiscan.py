"""MultiScan reader on scans written in the published layout (tests/data/layouts/multiscan.py):
poses and alignment, per-frame intrinsics, video and depth random access, fused points on the
mesh, bad inputs, detection and shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from layouts.clips import vision_only_clip_key
from layouts.multiscan import raw_deflate, write_mp4, write_multiscan_scan
from ross3d_data.core.errors import SceneError
from ross3d_data.core.geometry import backproject_depth, depth_mm_to_m
from ross3d_data.datasets import detect_format, find_scenes, load_scene
from ross3d_data.datasets.multiscan_depth import DepthStream
from ross3d_data.synthetic.raycast import import_open3d

SCAN = "scene_00042_01"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return write_multiscan_scan(tmp_path_factory.mktemp("multiscan"), SCAN, n_frames=10)


def _copy(scan, tmp_path: Path) -> Path:
    dest = tmp_path / SCAN
    shutil.copytree(scan.scan_dir, dest)
    return dest


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_poses_alignment_and_mesh_round_trip(scan):
    scene = load_scene(scan.scan_dir)
    assert scene.scene_id == f"multiscan-{SCAN}" and scene.dataset == "multiscan"
    assert scene.frame_ids() == [0, 1, 2, 3, 5, 6, 7, 8, 9] and scene.skipped_frame_ids() == [4]
    np.testing.assert_allclose(scene.T_aligned_world @ scan.T_raw_aligned, np.eye(4), atol=1e-12)
    for fid in scene.frame_ids():
        np.testing.assert_allclose(scene.T_aligned_cam(fid), scan.T_aligned_cam[fid], atol=1e-9)
        # the frame keeps the raw ARKit-world pose, in OpenCV camera axes
        raw = scan.T_raw_aligned @ scan.T_aligned_cam[fid]
        np.testing.assert_allclose(scene.frame_source.pose(fid), raw, atol=1e-9)
        assert scene.frame_source.timestamp_ns(fid) == scan.timestamps_ns[fid]
    # the released mesh is aligned; mesh_aligned gives it back after the raw round trip
    mesh = scene.mesh_aligned()
    np.testing.assert_allclose(mesh.vertices_N3, scan.mesh_aligned.vertices_N3, atol=1e-5)
    assert np.array_equal(mesh.colors_N3, scan.mesh_aligned.colors_N3)
    assert abs(float(mesh.vertices_N3[:, 2].min())) < 1e-5  # floor at z = 0, z up


def test_per_frame_intrinsics_scaled_to_the_depth_size(scan):
    scene = load_scene(scan.scan_dir)
    color, depth = scene.frame_intrinsics(7)
    assert color == scan.K_color[7] and color.fx == pytest.approx(537.9 + 0.3 * 7)
    # 640x480 -> 256x192: scale 0.4; integer pixel centres: cx' = (cx + 0.5) * 0.4 - 0.5
    assert (depth.width, depth.height) == (256, 192)
    assert depth.fx == pytest.approx(0.4 * (537.9 + 2.1))
    assert (depth.cx, depth.cy) == pytest.approx((314.3 * 0.4 - 0.5, 242.8 * 0.4 - 0.5))
    assert scene.color_intrinsics == scan.K_color[0]  # the scene's: its first valid frame


def test_frames_decode_in_any_order(scan):
    scene = load_scene(scan.scan_dir)
    for fid in (9, 2, 3, 0, 7, 6):  # backwards, forwards, across key frames (every 4th)
        frame = scene.load_frame(fid)
        assert np.array_equal(frame.color_HW3, scan.colors[fid])  # lossless H.264
        expected = np.round(scan.depth_f16[fid].astype(np.float64) * 1000).astype(np.uint16)
        assert np.array_equal(frame.depth_mm_HW, expected) and frame.depth_mm_HW.any()


def test_fused_depth_points_lie_on_the_mesh(scan):
    o3d = import_open3d()
    scene = load_scene(scan.scan_dir)
    points = []
    for fid in scene.frame_ids():
        depth = depth_mm_to_m(scene.load_frame(fid).depth_mm_HW)
        K_depth = scene.frame_intrinsics(fid)[1].K_33
        pts, valid = backproject_depth(depth, K_depth, scene.T_aligned_cam(fid))
        points.append(pts[valid])
    pts = np.concatenate(points).astype(np.float32)
    mesh = scene.mesh_aligned()
    rs = o3d.t.geometry.RaycastingScene()
    rs.add_triangles(o3d.core.Tensor(mesh.vertices_N3),
                     o3d.core.Tensor(mesh.faces_F3.astype(np.uint32)))  # fmt: skip
    dist = rs.compute_distance(o3d.core.Tensor(pts)).numpy()
    assert len(pts) > 300_000 and np.median(dist) <= 0.01


def test_depth_stream_values_by_hand_and_checkpoints(tmp_path):
    """float16 metres -> mm: 0, NaN, inf, negative and > 65.535 m are invalid (0)."""
    frames = np.array([[[0.0, np.nan, np.inf, 1.5, -1.0, 70.0]], [[0.25, 2.0, 3.0, 4.0, 5.0, 6.0]],
                       [[1.0, 1.0, 1.0, 1.0, 1.0, 0.001]]], "<f2")  # fmt: skip
    path = tmp_path / "x.depth.zlib"
    path.write_bytes(raw_deflate(frames.tobytes()))
    stream = DepthStream(path, 1, 6, checkpoint_bytes=12)  # a checkpoint after every frame
    assert stream.count() == 3
    assert stream.read_mm(2).tolist() == [[1000, 1000, 1000, 1000, 1000, 1]]
    assert stream.read_mm(0).tolist() == [[0, 0, 0, 1500, 0, 0]]
    assert stream.read_mm(1).tolist() == [[250, 2000, 3000, 4000, 5000, 6000]]
    mm = DepthStream(path, 1, 6, unit="mm")  # Android: uint16 millimetres
    assert mm.read_mm(1).tolist() == [[0x3400, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600]]


def test_truncated_depth_stream_is_one_line_naming_the_file(scan, tmp_path):
    scan_dir = _copy(scan, tmp_path)
    depth = scan_dir / f"{SCAN}.depth.zlib"
    depth.write_bytes(depth.read_bytes()[: depth.stat().st_size // 2])
    with pytest.raises(SceneError) as err:
        load_scene(scan_dir)
    assert f"{SCAN}.depth.zlib: truncated" in _one_line(err)


def test_frame_count_mismatch_is_one_line_naming_the_file(scan, tmp_path):
    scan_dir = _copy(scan, tmp_path)
    jsonl = scan_dir / f"{SCAN}.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(SceneError) as err:
        load_scene(scan_dir)
    assert f"{SCAN}.depth.zlib: holds 10 depth frames but {SCAN}.jsonl has 9" in _one_line(err)
    shutil.copy(scan.scan_dir / f"{SCAN}.jsonl", jsonl)
    write_mp4(scan_dir / f"{SCAN}.mp4", scan.colors[:9])
    with pytest.raises(SceneError) as err:
        load_scene(scan_dir)
    assert f"{SCAN}.mp4: holds 9 video frames but {SCAN}.jsonl has 10" in _one_line(err)


def test_other_bad_inputs_name_the_file(scan, tmp_path):
    scan_dir = _copy(scan, tmp_path)
    jsonl = scan_dir / f"{SCAN}.jsonl"
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join([*lines[:2], '{"timestamp": 5}', *lines[3:]]) + "\n")
    with pytest.raises(SceneError) as err:
        load_scene(scan_dir)
    assert f"{SCAN}.jsonl:3: not a camera record: KeyError" in _one_line(err)
    jsonl.write_text("\n".join(lines) + "\n")

    align = scan_dir / f"{SCAN}.align.json"
    data = json.loads(align.read_text())
    data["coordinate_transform"][0] = 2.0  # a scale: not rigid
    align.write_text(json.dumps(data))
    with pytest.raises(SceneError) as err:
        load_scene(scan_dir)
    assert f"{SCAN}.align.json: coordinate_transform is not a rigid" in _one_line(err)
    align.unlink()
    with pytest.raises(SceneError) as err:
        load_scene(scan_dir)
    assert f"{SCAN}.align.json: missing" in _one_line(err)


def test_detection_and_find_scenes(scan, tmp_path):
    root = tmp_path / "multiscan"
    shutil.copytree(scan.scan_dir, root / SCAN)
    (root / "scene_00000_00").mkdir()  # no files: not a scan
    assert detect_format(root / SCAN) == "multiscan"
    assert find_scenes(root) == [root / SCAN] == find_scenes(root, fmt="multiscan")
    with pytest.raises(SceneError) as err:
        load_scene(root / "scene_00000_00")
    assert "MultiScan: <scan>/<scan>.jsonl" in _one_line(err)


def test_build_shards_makes_a_vision_only_clip(scan, tmp_path):
    assert vision_only_clip_key(scan.scan_dir, tmp_path / "s", views=2) == f"multiscan-{SCAN}"
