"""3RScan reader on scans written in the published layout (tests/data/layouts/rscan.py):
poses, upright frames, fused points on the mesh, zip members, rescan alignment, bad inputs."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from layouts.clips import vision_only_clip_key
from layouts.rscan import (
    caster_intrinsics,
    info_text,
    pgm_p5,
    pose_text,
    write_rescans_json,
    write_rscan_scan,
    yaw_transform,
)
from ross3d_data.core.errors import SceneError
from ross3d_data.core.geometry import backproject_depth, depth_mm_to_m, project_points
from ross3d_data.core.records import Intrinsics
from ross3d_data.datasets import detect_format, find_scenes, load_scene
from ross3d_data.datasets.rscan import RScanConfig
from ross3d_data.datasets.rscan import load_scene as load_rscan
from ross3d_data.synthetic.raycast import MeshRaycaster, import_open3d

SCAN_ID = "0cac7536-8d6f-2d13-8dc2-2f9d7aa62dc4"  # a UUID like 3RScan's (no dot)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return write_rscan_scan(tmp_path_factory.mktemp("3rscan"), SCAN_ID, n_frames=6, invalid=(2,))


def _zipped_copy(scan_dir: Path, dest: Path, prefix: str = "") -> Path:
    """The scan with ``sequence/`` packed as ``sequence.zip`` (members under ``prefix``)."""
    shutil.copytree(scan_dir, dest, ignore=shutil.ignore_patterns("sequence"))
    with zipfile.ZipFile(dest / "sequence.zip", "w") as z:
        for p in sorted((scan_dir / "sequence").iterdir()):
            z.write(p, prefix + p.name)
    return dest


def test_poses_round_trip_and_invalid_frames_are_skipped(scan):
    scene = load_scene(scan.scan_dir)
    assert scene.scene_id == f"3rscan-{SCAN_ID}" and scene.dataset == "3rscan"
    assert scene.frame_ids() == [0, 1, 3, 4, 5] and scene.skipped_frame_ids() == [2]
    assert np.array_equal(scene.T_aligned_world, np.eye(4))  # no rescan alignment by default
    for fid in scene.frame_ids():
        np.testing.assert_allclose(scene.T_aligned_cam(fid), scan.T_world_cam_upright[fid],
                                   atol=1e-8)  # fmt: skip
        frame = scene.load_frame(fid)
        np.testing.assert_allclose(frame.T_world_cam, scan.T_world_cam_upright[fid], atol=1e-8)
    mesh = scene.mesh_aligned()  # textured OBJ: colours sampled from mesh.refined_0.png
    np.testing.assert_allclose(mesh.vertices_N3, scan.mesh_world.vertices_N3, atol=1e-5)
    assert np.array_equal(mesh.colors_N3, scan.mesh_world.colors_N3)


def test_frames_are_upright_with_consistent_intrinsics_and_pose(scan):
    scene = load_scene(scan.scan_dir)
    Kc, Kd = scene.color_intrinsics, scene.depth_intrinsics
    assert (Kc.width, Kc.height, Kd.width, Kd.height) == (540, 960, 172, 224)  # portrait
    # stored 960x540 is fx=756.832, cx=492.889 (x along the long side); upright swaps them
    assert (Kc.fx, Kc.fy, Kc.cx, Kc.cy) == pytest.approx((756.026, 756.832, 539 - 270.419, 492.889))
    caster = MeshRaycaster(scan.mesh_world)
    for fid in (0, 4):
        frame = scene.load_frame(fid)
        assert frame.color_HW3.shape == (960, 540, 3) and frame.depth_mm_HW.shape == (224, 172)
        # upright: the image's down axis (camera +y) points down in the z-up world
        assert frame.T_world_cam[2, 1] < -0.5
        # rendering the mesh directly with the upright K and pose gives the loaded images
        color, _ = caster.render(caster_intrinsics(Kc), frame.T_world_cam)
        _, depth = caster.render(caster_intrinsics(Kd), frame.T_world_cam)
        close = np.abs(depth.astype(int) - frame.depth_mm_HW) <= 1
        assert close.mean() > 0.99 and (frame.depth_mm_HW > 0).mean() > 0.9
        assert np.abs(color.astype(int) - frame.color_HW3).mean() < 3.0  # JPEG at quality 95


def test_a_world_point_lands_on_the_turned_pixel(scan):
    """Stored pixel (u, v) of a point is upright pixel (H-1-v, u), H = stored height."""
    scene = load_scene(scan.scan_dir)
    frames = scene.frame_source
    K_stored = frames.info.color
    points = scan.mesh_world.vertices_N3[::50].astype(np.float64)
    uv, z = project_points(points, K_stored.K_33, frames.stored_pose(1))
    uv_up, z_up = project_points(points, scene.color_intrinsics.K_33, scene.T_aligned_cam(1))
    ok = z > 0.1
    assert ok.sum() > 10
    np.testing.assert_allclose(z_up[ok], z[ok], atol=1e-9)
    np.testing.assert_allclose(uv_up[ok, 0], K_stored.height - 1 - uv[ok, 1], atol=1e-6)
    np.testing.assert_allclose(uv_up[ok, 1], uv[ok, 0], atol=1e-6)


def test_fused_depth_points_lie_on_the_mesh(scan):
    o3d = import_open3d()
    scene = load_scene(scan.scan_dir)
    points = []
    for fid in scene.frame_ids():
        depth = depth_mm_to_m(scene.load_frame(fid).depth_mm_HW)
        pts, valid = backproject_depth(depth, scene.depth_intrinsics.K_33, scene.T_aligned_cam(fid))
        points.append(pts[valid])
    pts = np.concatenate(points).astype(np.float32)
    mesh = scene.mesh_aligned()
    rs = o3d.t.geometry.RaycastingScene()
    rs.add_triangles(
        o3d.core.Tensor(mesh.vertices_N3), o3d.core.Tensor(mesh.faces_F3.astype(np.uint32))
    )
    dist = rs.compute_distance(o3d.core.Tensor(pts)).numpy()
    assert len(pts) > 100_000 and np.median(dist) <= 0.01


def test_zip_members_read_like_the_folder(scan, tmp_path):
    folder = load_scene(scan.scan_dir)
    for prefix in ("", "sequence/"):  # the official unzip layout, and a zip of the folder
        zipped = load_rscan(_zipped_copy(scan.scan_dir, tmp_path / prefix.strip("/") / SCAN_ID,
                                         prefix))  # fmt: skip
        assert zipped.frame_source.path.name == "sequence.zip"
        assert zipped.frame_ids() == folder.frame_ids()
        a, b = zipped.load_frame(3), folder.load_frame(3)
        assert np.array_equal(a.color_HW3, b.color_HW3) and np.array_equal(
            a.depth_mm_HW, b.depth_mm_HW
        )
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)


def _tiny_sequence(scan_dir: Path, depth_mm_HW: np.ndarray, info: str | None = None) -> None:
    """A one-frame sequence with 4x2 colour and the given depth."""
    seq = scan_dir / "sequence"
    seq.mkdir(parents=True)
    h, w = depth_mm_HW.shape
    color_K, depth_K = Intrinsics(5, 5, 1.5, 0.5, 4, 2), Intrinsics(3, 3, (w - 1) / 2, 0.5, w, h)
    (seq / "_info.txt").write_text(info if info is not None else info_text(1, color_K, depth_K))
    cv2.imwrite(str(seq / "frame-000000.color.jpg"), np.zeros((2, 4, 3), np.uint8))
    (seq / "frame-000000.depth.pgm").write_bytes(pgm_p5(depth_mm_HW))
    (seq / "frame-000000.pose.txt").write_text(pose_text(np.eye(4)))


def test_depth_pgm_is_read_big_endian_and_turned_clockwise(tmp_path):
    depth = np.array([[1, 258, 3], [4, 5, 65535]], np.uint16)  # 258 = bytes 01 02
    _tiny_sequence(tmp_path / "s", depth)
    frame = load_rscan(tmp_path / "s").load_frame(0)
    assert frame.depth_mm_HW.dtype == np.uint16
    assert frame.depth_mm_HW.tolist() == [[4, 1], [5, 258], [65535, 3]]  # 90 deg clockwise
    assert frame.color_HW3.shape == (4, 2, 3)


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_bad_inputs_name_the_file(scan, tmp_path):
    broken = tmp_path / SCAN_ID
    shutil.copytree(scan.scan_dir, broken)
    (broken / "sequence" / "_info.txt").unlink()
    with pytest.raises(SceneError) as err:
        load_scene(broken)
    assert "_info.txt: missing" in _one_line(err)
    for prefix in ("", "sequence/"):
        zipped = _zipped_copy(broken, tmp_path / f"z{len(prefix)}" / SCAN_ID, prefix)
        with pytest.raises(SceneError) as err:
            load_scene(zipped)
        assert f"sequence.zip/{prefix}_info.txt: missing" in _one_line(err)

    info = info_text(6).replace("m_calibrationDepthIntrinsic", "m_calibrationDepthIntrinsics_x")
    (broken / "sequence" / "_info.txt").write_text(
        info.replace("m_depthWidth = 224", "m_depthWidth = 200")
    )
    with pytest.raises(SceneError) as err:
        load_scene(broken)
    assert "_info.txt: no m_calibrationDepthIntrinsic line" in _one_line(err)

    (broken / "sequence" / "_info.txt").write_text(
        info_text(6).replace("m_depthWidth = 224", "m_depthWidth = 200")
    )
    with pytest.raises(SceneError) as err:
        load_scene(broken).load_frame(0)
    assert "frame-000000.depth.pgm: is 224x172, _info.txt says 200x172" in _one_line(err)

    (broken / "sequence" / "frame-000001.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    with pytest.raises(SceneError) as err:
        load_scene(broken)
    assert "frame-000001.pose.txt: has 12 numbers, expected 16" in _one_line(err)


def test_truncated_depth_and_missing_images_fail_that_frame_only(scan, tmp_path):
    broken = tmp_path / SCAN_ID
    shutil.copytree(scan.scan_dir, broken)
    pgm = broken / "sequence" / "frame-000003.depth.pgm"
    pgm.write_bytes(pgm.read_bytes()[:5000])
    (broken / "sequence" / "frame-000004.color.jpg").unlink()
    scene = load_scene(broken)
    with pytest.raises(SceneError) as err:
        scene.load_frame(3)
    assert "frame-000003.depth.pgm: cannot be decoded" in _one_line(err)
    with pytest.raises(SceneError) as err:
        scene.load_frame(4)
    assert "frame-000004.color.jpg: missing" in _one_line(err)
    assert scene.load_frame(5).depth_mm_HW.any()


def test_rescan_alignment_maps_into_the_reference_scan(tmp_path):
    ref = write_rscan_scan(tmp_path, "ref-scan", n_frames=1, invalid=())
    T_world_room = yaw_transform(-70.0, (2.0, 1.0, -0.3))
    rescan = write_rscan_scan(
        tmp_path, "re-scan", n_frames=2, invalid=(), T_world_room=T_world_room
    )
    json_path = write_rescans_json(tmp_path, ref, [rescan])
    assert np.array_equal(load_rscan(rescan.scan_dir).T_aligned_world, np.eye(4))  # option off
    aligned = load_rscan(rescan.scan_dir, config=RScanConfig(align_to_reference=True))
    T_ref_rescan = ref.T_world_room @ np.linalg.inv(T_world_room)
    np.testing.assert_allclose(aligned.T_aligned_world, T_ref_rescan, atol=1e-9)
    # the same room: the rescan's mesh lands on the reference's
    np.testing.assert_allclose(aligned.mesh_aligned().vertices_N3, ref.mesh_world.vertices_N3,
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(aligned.T_aligned_cam(1),
                               ref.T_world_room @ np.linalg.inv(T_world_room)
                               @ rescan.T_world_cam_upright[1], atol=1e-8)  # fmt: skip
    reference = load_rscan(ref.scan_dir, config=RScanConfig(align_to_reference=True))
    assert np.array_equal(reference.T_aligned_world, np.eye(4))

    text = json_path.read_text()
    mm = json_path.with_name("mm.json")
    import json

    data = json.loads(text)
    data[0]["scans"][0]["transform"][12:15] = [
        v * 1000 for v in data[0]["scans"][0]["transform"][12:15]
    ]
    mm.write_text(json.dumps(data))
    in_mm = RScanConfig(align_to_reference=True, rescans_json=mm, translation_unit="mm")
    np.testing.assert_allclose(load_rscan(rescan.scan_dir, config=in_mm).T_aligned_world,
                               T_ref_rescan, atol=1e-9)  # fmt: skip
    with pytest.raises(SceneError) as err:  # millimetres read as metres: refused
        load_rscan(rescan.scan_dir, config=RScanConfig(align_to_reference=True, rescans_json=mm))
    assert "mm.json: rescan re-scan translation" in _one_line(err) and "millimetres?" in str(
        err.value
    )
    del data[0]["scans"][0]["transform"]
    mm.write_text(json.dumps(data))
    with pytest.raises(SceneError, match="re-scan has no transform"):
        load_rscan(rescan.scan_dir, config=RScanConfig(align_to_reference=True, rescans_json=mm))


def test_detection_and_find_scenes(scan, tmp_path):
    root = tmp_path / "3RScan"
    shutil.copytree(scan.scan_dir, root / SCAN_ID)
    _zipped_copy(scan.scan_dir, root / "second-scan")
    (root / "not-a-scan").mkdir()
    assert detect_format(root / SCAN_ID) == "3rscan"
    assert find_scenes(root) == [root / SCAN_ID, root / "second-scan"]  # sorted by name
    assert find_scenes(root, fmt="3rscan") == find_scenes(root)
    assert load_scene(root / "second-scan").scene_id == "3rscan-second-scan"
    with pytest.raises(SceneError) as err:
        load_scene(root / "not-a-scan")
    assert "3RScan: <scan_id>/mesh.refined.v2.obj" in _one_line(err)


def test_build_shards_makes_a_vision_only_clip(scan, tmp_path):
    assert vision_only_clip_key(scan.scan_dir, tmp_path / "s", views=2) == f"3rscan-{SCAN_ID}"
