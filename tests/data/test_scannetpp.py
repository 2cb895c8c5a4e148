"""ScanNet++ iPhone captures (datasets.scannetpp) read from synthetic scenes written in the
published layout (layouts.scannetpp), checked against what the generator knows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from layouts.clips import vision_only_clip_key
from layouts.scannetpp import (
    N_FRAMES,
    UNREGISTERED,
    ScannetppTruth,
    depth_bin_bytes,
    write_scannetpp_scene,
)
from ross3d_data.core.errors import SceneError
from ross3d_data.core.geometry import backproject_depth
from ross3d_data.datasets import FORMATS, detect_format, find_scenes, load_scene
from ross3d_data.datasets.scannetpp_depth import DepthStream
from ross3d_data.synthetic.raycast import import_open3d

LZ4_ID, DEFLATE_ID = "0a1b2c3d4e", "5f6e7d8c9b"
MISALIGNED = (4, 7)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, ScannetppTruth]:
    """Two captures of the same room and trajectory: depth.bin as lz4 records, and as raw-deflate
    float32 records with two frames' aligned_pose moved 3 cm."""
    root = tmp_path_factory.mktemp("scannetpp")
    return {
        LZ4_ID: write_scannetpp_scene(root, LZ4_ID, "lz4"),
        DEFLATE_ID: write_scannetpp_scene(root, DEFLATE_ID, "deflate", misaligned=MISALIGNED),
    }


@pytest.fixture(scope="module")
def truth(written) -> ScannetppTruth:
    return written[LZ4_ID]


def test_poses_round_trip_from_colmap_not_the_decoy(truth):
    scene = load_scene(truth.scene_dir)
    assert scene.scene_id == f"scannetpp-{LZ4_ID}" and scene.dataset == "scannetpp"
    assert np.array_equal(scene.T_aligned_world, np.eye(4))  # COLMAP world = mesh_aligned frame
    assert scene.frame_ids() == list(truth.registered)
    for f in truth.registered:
        # nerfstudio/transforms.json holds a permuted pose for every frame: not read
        assert np.allclose(scene.T_aligned_cam(f), truth.T_world_cam[f], atol=1e-9)
    assert scene.frame_source.metadata["camera_model"] == "OPENCV"
    assert scene.frame_source.metadata["distortion_ignored"] == [0.0, 0.0, 0.0, 0.0]


def test_unregistered_frames_are_skipped_and_counted(truth):
    scene = load_scene(truth.scene_dir)
    assert scene.skipped_frame_ids() == list(UNREGISTERED)
    frames = scene.frame_source.metadata["frames"]
    assert frames["video"] == frames["depth"] == N_FRAMES
    assert frames["kept"] == N_FRAMES - len(UNREGISTERED)
    with pytest.raises(SceneError, match="not a registered frame"):
        scene.load_frame(UNREGISTERED[0])


def test_frames_decode_to_the_written_images(truth):
    scene = load_scene(truth.scene_dir)
    for f in truth.registered:
        frame = scene.load_frame(f)
        assert frame.frame_id == f and np.array_equal(frame.T_world_cam, scene.T_aligned_cam(f))
        assert np.array_equal(frame.depth_mm_HW, truth.depth_mm[f])
        assert frame.color_HW3.dtype == np.uint8 and frame.color_HW3.shape == truth.color[f].shape
        err = np.abs(frame.color_HW3.astype(int) - truth.color[f]).mean()
        neighbours = [g for g in (f - 1, f + 1) if 0 <= g < N_FRAMES]
        other = min(np.abs(frame.color_HW3.astype(int) - truth.color[g]).mean() for g in neighbours)
        assert err < 4.0 and other > 4 * err  # H.264 loss only, and the right frame


def test_depth_intrinsics_scaled_and_points_on_the_mesh(truth):
    scene = load_scene(truth.scene_dir)
    K_c, K_d = scene.color_intrinsics, scene.depth_intrinsics
    assert (K_c.width, K_c.height, K_d.width, K_d.height) == (320, 240, 256, 192)
    assert K_d.fx == pytest.approx(K_c.fx * 0.8) and K_d.fy == pytest.approx(K_c.fy * 0.8)
    o3d = import_open3d()
    raycast = o3d.t.geometry.RaycastingScene()
    raycast.add_triangles(o3d.core.Tensor(truth.mesh_world.vertices_N3),
                          o3d.core.Tensor(truth.mesh_world.faces_F3.astype(np.uint32)))  # fmt: skip
    dists = []
    for f in truth.registered[::4]:
        frame = scene.load_frame(f)
        depth_m = frame.depth_mm_HW / 1000.0
        points, valid = backproject_depth(depth_m, K_d.K_33, scene.T_aligned_cam(f))
        # the generator's own ray through pixel centre (u + 0.5, v + 0.5) in COLMAP's convention
        Kr = truth.depth_K
        v, u = np.mgrid[0 : Kr.height, 0 : Kr.width] + 0.5
        cam = np.stack([(u - Kr.cx) / Kr.fx, (v - Kr.cy) / Kr.fy, np.ones_like(u)], -1)
        expected = (cam * depth_m[..., None]) @ truth.T_world_cam[f][:3, :3].T
        expected += truth.T_world_cam[f][:3, 3]
        assert valid.mean() > 0.9
        assert np.abs(points[valid] - expected[valid]).max() < 1e-6
        query = o3d.core.Tensor(points[valid].astype(np.float32))
        dists.append(raycast.compute_distance(query).numpy())
    assert float(np.median(np.concatenate(dists))) <= 0.01


def test_depth_encodings_decode_to_the_same_depth(written, tmp_path):
    lz4_scene, deflate_scene = (
        load_scene(written[LZ4_ID].scene_dir),
        load_scene(written[DEFLATE_ID].scene_dir),
    )
    assert lz4_scene.frame_source.metadata["depth_encoding"] == "per-frame"
    for f in written[LZ4_ID].registered[:5]:
        a, b = lz4_scene.load_frame(f).depth_mm_HW, deflate_scene.load_frame(f).depth_mm_HW
        assert np.array_equal(a, b) and np.array_equal(a, written[LZ4_ID].depth_mm[f])
    # the whole-file variant: one raw-deflate stream of float32 metres
    depth = written[LZ4_ID].depth_mm
    (tmp_path / "depth.bin").write_bytes(depth_bin_bytes(depth, "stream"))
    stream = DepthStream(tmp_path / "depth.bin")
    assert stream.encoding == "stream" and stream.count(wanted={2, 9}) == N_FRAMES
    assert all(np.array_equal(stream.read(i), depth[i]) for i in (2, 9, N_FRAMES - 1))
    scene_dir = tmp_path / "data" / "0c0ffee0ab"
    shutil.copytree(written[LZ4_ID].scene_dir, scene_dir)
    shutil.copy(tmp_path / "depth.bin", scene_dir / "iphone" / "depth.bin")
    scene = load_scene(scene_dir)
    assert scene.frame_source.metadata["depth_encoding"] == "stream"
    assert scene.frame_ids() == list(written[LZ4_ID].registered)
    f = scene.frame_ids()[-1]
    assert np.array_equal(scene.load_frame(f).depth_mm_HW, depth[f])


def _lz4_with_bad_record(depth: np.ndarray) -> bytes:
    data = bytearray(depth_bin_bytes(depth[:3], "lz4"))
    data[4:40] = bytes(range(36))  # record 0's payload: neither lz4 nor deflate any more
    return bytes(data)


@pytest.mark.parametrize("corrupt", ["garbage", "bad record", "truncated stream", "empty"])
def test_corrupt_depth_bin_is_a_one_line_scene_error(truth, tmp_path, corrupt):
    scene_dir = tmp_path / "data" / "0badc0ffee"
    shutil.copytree(truth.scene_dir, scene_dir)
    stream = depth_bin_bytes(truth.depth_mm, "stream")
    payload = {
        "garbage": b"\xff\x13 not a depth file \x00" * 400,
        "bad record": _lz4_with_bad_record(truth.depth_mm),
        "truncated stream": stream[: len(stream) // 2],
        "empty": b"",
    }[corrupt]
    (scene_dir / "iphone" / "depth.bin").write_bytes(payload)
    with pytest.raises(SceneError) as err:
        load_scene(scene_dir).frame_ids()  # a stream is decoded when the frames are counted
    assert err.value.path == scene_dir / "iphone" / "depth.bin"
    assert "\n" not in str(err.value)


def test_aligned_pose_disagreement_is_flagged_not_used(written):
    ok = load_scene(written[LZ4_ID].scene_dir).frame_source.metadata
    assert ok["warnings"] == [] and ok["aligned_pose_check"]["checked"] == len(
        written[LZ4_ID].registered
    )
    assert ok["aligned_pose_check"]["max_translation_m"] < 1e-9
    bad_truth = written[DEFLATE_ID]
    bad = load_scene(bad_truth.scene_dir)
    check = bad.frame_source.metadata["aligned_pose_check"]
    assert check["disagreeing"] == len(MISALIGNED)
    assert check["max_translation_m"] == pytest.approx(0.03)
    (warning,) = bad.frame_source.metadata["warnings"]
    assert "aligned_pose disagrees" in warning and "2 of 20" in warning
    for f in MISALIGNED:  # the pose stays COLMAP's
        assert np.allclose(bad.T_aligned_cam(f), bad_truth.T_world_cam[f], atol=1e-9)


def test_detected_and_found_through_the_registry(written, tmp_path):
    data = Path(written[LZ4_ID].scene_dir).parent
    assert find_scenes(data) == sorted([data / LZ4_ID, data / DEFLATE_ID])
    assert detect_format(data / LZ4_ID) == "scannetpp"
    assert FORMATS["scannetpp"].scene_id(data / LZ4_ID) == f"scannetpp-{LZ4_ID}"
    mesh_only = tmp_path / "meshonly0a"
    shutil.copytree(data / LZ4_ID / "scans", mesh_only / "scans")
    scene = load_scene(mesh_only)
    assert scene.frame_ids() == [] and scene.color_intrinsics is None
    assert len(scene.mesh_aligned().vertices_N3) == len(written[LZ4_ID].mesh_world.vertices_N3)
    unposed = tmp_path / "unposed0b"
    shutil.copytree(data / LZ4_ID, unposed)
    shutil.rmtree(unposed / "iphone" / "colmap")
    with pytest.raises(SceneError, match="posed by COLMAP only"):
        load_scene(unposed)


def test_build_shards_makes_a_vision_only_clip(truth, tmp_path):
    assert (
        vision_only_clip_key(truth.scene_dir, tmp_path / "shards", views=4) == f"scannetpp-{LZ4_ID}"
    )


def test_images_txt_by_hand(tmp_path):
    """90 deg about z, t = (1, 2, 3): camera-to-world R^T, -R^T t; the points2D line after an
    image is consumed even when it looks like an image line; a NaN pose is counted invalid."""
    from ross3d_data.datasets.scannetpp import read_images_txt

    h = np.sqrt(0.5)
    path = tmp_path / "images.txt"
    path.write_text(
        "# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
        f"7 {h} 0 0 {h} 1 2 3 1 iphone/frame_000042.jpg\n"
        "1 1 0 0 0 0 0 0 1 frame_000005.jpg\n"  # points2D of image 7, not an image
        "8 nan 0 0 0 0 0 0 1 frame_000043.jpg\n\n"
    )
    poses, cameras, invalid = read_images_txt(path)
    expected = np.array([[0, 1, 0, -2], [-1, 0, 0, 1], [0, 0, 1, -3], [0, 0, 0, 1.0]])
    assert sorted(poses) == [42] and np.allclose(poses[42], expected, atol=1e-12)
    assert cameras == {42: 1, 43: 1} and invalid == [43]
    path.write_text("1 1 0 0 0 0 0 0 1 frame_000001.jpg\n\n2 1 0 0 0 0 0 0 1 frame_000001.jpg\n")
    with pytest.raises(SceneError, match="registered twice"):
        read_images_txt(path)
    path.write_text("1 1 0 0 0 0 0 0 1 image_one.jpg\n\n")
    with pytest.raises(SceneError, match="line 1"):
        read_images_txt(path)


def test_aligned_pose_in_opengl_axes_is_named_in_the_warning(tmp_path):
    """The aligned_pose camera convention is unverified: a file in OpenGL camera axes must be
    flagged (and recognised), never silently used."""
    import json

    from ross3d_data.datasets.scannetpp import check_aligned_poses

    T = np.eye(4)
    T[:3, 3] = (1.0, 2.0, 0.5)
    gl = T @ np.diag([1.0, -1.0, -1.0, 1.0])
    path = tmp_path / "pose_intrinsic_imu.json"
    path.write_text(json.dumps({"frame_000003": {"aligned_pose": gl.tolist()}}))
    check = check_aligned_poses(path, {3: T, 4: T})
    assert (check["checked"], check["missing"], check["disagreeing"]) == (1, 1, 1)
    assert check["max_rotation_deg"] == pytest.approx(180.0)
    (warning,) = check["warnings"]
    assert "OpenGL" in warning and "1 of 1" in warning
    assert check_aligned_poses(tmp_path / "none.json", {3: T})["warnings"] == [
        "none.json missing: COLMAP poses not cross-checked"
    ]
