"""ARKitScenes 3DOD reader on a synthetic video in the published layout (layouts.arkitscenes)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from layouts.arkitscenes import (
    EMPTY_VID,
    NEAR_POSE,
    NO_POSE,
    PINCAM_BEFORE,
    SENSOR_K,
    VID,
    YAW_DEG,
    render,
    write_arkit_video,
    write_video_without_assets,
    yaw_pose,
)
from PIL import Image
from ross3d_data.bev.fusion import fuse_scene_points
from ross3d_data.bev.grid import BevConfig
from ross3d_data.bev.render import render_bev_scenes
from ross3d_data.cli import app
from ross3d_data.core.errors import SceneError
from ross3d_data.core.geometry import backproject_depth, depth_mm_to_m
from ross3d_data.core.records import Intrinsics, Mesh
from ross3d_data.datasets import detect_format, find_scenes, load_scene
from ross3d_data.datasets.arkitscenes import PoseKeys, read_traj
from ross3d_data.datasets.registry import scene_id_of
from ross3d_data.shards.build import ShardConfig, build_shards, read_manifest, read_tar
from ross3d_data.shards.loader import iter_examples
from ross3d_data.shards.sample import SampleConfig
from ross3d_data.synthetic.raycast import MeshRaycaster, import_open3d
from ross3d_data.views.selection import choose_views
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    split = tmp_path_factory.mktemp("arkit") / "Training"
    truth = write_arkit_video(split)
    write_video_without_assets(split)
    return truth


@pytest.fixture(scope="module")
def scene(video):
    return load_scene(video.path)


def test_detected_and_listed_through_the_registry(video):
    split = video.path.parent
    assert detect_format(video.path) == "arkitscenes"
    assert detect_format(split / EMPTY_VID) == "arkitscenes"  # frames only: detected, then fails
    assert detect_format(split) is None
    assert find_scenes(split) == [split / VID, split / EMPTY_VID]
    scene = load_scene(video.path)
    assert (scene.dataset, scene.scene_id) == ("arkitscenes", f"arkitscenes-{VID}")
    assert scene_id_of(video.path) == scene.scene_id


def test_video_without_mesh_and_traj_is_a_one_line_scene_error(video):
    with pytest.raises(SceneError) as err:
        load_scene(video.path.parent / EMPTY_VID)
    msg = str(err.value)
    assert "\n" not in msg and EMPTY_VID in msg
    assert f"{EMPTY_VID}_3dod_mesh.ply" in msg and "lowres_wide.traj" in msg and "skip" in msg


def test_frame_ids_are_time_order_indices_and_the_poseless_frame_is_skipped(video, scene):
    n = len(video.timestamps)
    assert scene.frame_ids() == [i for i in range(n) if i != NO_POSE]
    assert scene.skipped_frame_ids() == [NO_POSE]
    assert dict(scene.frame_source.skip_reasons) == {"no pose in lowres_wide.traj": 1}
    assert [scene.frame_source.timestamp(i) for i in range(n)] == video.timestamps
    assert "." not in scene.scene_id and all(isinstance(i, int) for i in scene.frame_ids())


def test_poses_round_trip_including_near_timestamp_and_pincam_fallback(video, scene):
    for fid in scene.frame_ids():
        ts = video.timestamps[fid]
        frame = scene.load_frame(fid)
        np.testing.assert_allclose(frame.T_world_cam, video.T_world_cam[ts], atol=1e-9)
        np.testing.assert_allclose(scene.frame_source.pose(fid), video.T_world_cam[ts], atol=1e-9)
        np.testing.assert_allclose(
            scene.T_aligned_cam(fid), scene.T_aligned_world @ video.T_world_cam[ts], atol=1e-9
        )
    assert NEAR_POSE in scene.frame_ids() and PINCAM_BEFORE in scene.frame_ids()


def test_traj_lines_are_world_to_camera_by_hand(tmp_path):
    traj = tmp_path / "lowres_wide.traj"
    # world-to-camera: R = 90 deg about z, t = (1, 2, 3); the same key again 0.4 ms later wins
    traj.write_text(
        "1.23456789 0 0 1.5707963267948966 9 9 9\n1.2349 0 0 1.5707963267948966 1 2 3\n"
        "2.5 0 0 0 0 0 0\n"
    )
    poses = read_traj(traj)
    assert list(poses) == ["1.235", "2.500"]
    expect = np.array([[0, 1, 0, -2], [-1, 0, 0, 1], [0, 0, 1, -3], [0, 0, 0, 1]], float)
    np.testing.assert_allclose(poses["1.235"], expect, atol=1e-12)
    traj.write_text("1.0 0 0 1 2 3\n")
    with pytest.raises(SceneError, match="line 1: need 7 finite columns"):
        read_traj(traj)


def test_pose_key_matching_follows_the_official_rule():
    keys = PoseKeys(["10.000", "10.003", "10.006", "9.998"])
    assert keys.match("10.003") == "10.003"  # exact first
    assert keys.match("10.002") == "9.998"  # the last key within 0.005 s, in traj order
    assert keys.match("10.012") is None


def test_rotated_frames_come_out_upright_and_equal_a_direct_render(video, scene):
    K = SENSOR_K
    expect_K = {  # hand-computed: integer pixel centres, W = 256, H = 192
        0: K,
        1: Intrinsics(213.5, 212.0, 191 - 95.8, 127.3, 192, 256),
        2: Intrinsics(212.0, 213.5, 255 - 127.3, 191 - 95.8, 256, 192),
        3: Intrinsics(213.5, 212.0, 95.8, 255 - 127.3, 192, 256),
    }
    caster = MeshRaycaster(video.mesh_world)
    seen = set()
    for fid in scene.frame_ids():
        ts = video.timestamps[fid]
        turns = video.turns[ts]
        color_K, depth_K = scene.frame_intrinsics(fid)
        assert color_K == depth_K
        for got, want in zip(
            (color_K.fx, color_K.fy, color_K.cx, color_K.cy, color_K.width, color_K.height),
            (*[getattr(expect_K[turns], a) for a in ("fx", "fy", "cx", "cy", "width", "height")],),
            strict=True,
        ):
            assert got == pytest.approx(want, abs=1e-9)
        frame = scene.load_frame(fid)
        assert (
            frame.depth_mm_HW.shape == frame.color_HW3.shape[:2] == (color_K.height, color_K.width)
        )
        assert frame.T_world_cam[2, 1] < 0  # image down (+y) points to world -Z: upright
        color, depth = render(caster, color_K, video.T_world_cam[ts])
        assert np.mean(np.abs(depth.astype(int) - frame.depth_mm_HW) <= 1) > 0.99
        assert np.mean(np.abs(color.astype(int) - frame.color_HW3).max(-1) <= 2) > 0.99
        seen.add(turns)
    assert seen == {0, 1, 2, 3}


def distance_to_mesh(mesh: Mesh, points_N3: np.ndarray) -> np.ndarray:
    o3d = import_open3d()
    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(o3d.core.Tensor(mesh.vertices_N3),
                     o3d.core.Tensor(mesh.faces_F3.astype(np.uint32)))  # fmt: skip
    return rc.compute_distance(o3d.core.Tensor(points_N3.astype(np.float32))).numpy()


def test_fused_points_of_every_frame_lie_on_the_mesh(video, scene):
    points = []
    for fid in scene.frame_ids():
        frame = scene.load_frame(fid)
        K = scene.frame_intrinsics(fid)[1]
        pts, valid = backproject_depth(depth_mm_to_m(frame.depth_mm_HW), K.K_33, frame.T_world_cam)
        points.append(pts[valid])
    points = np.concatenate(points)
    dist = distance_to_mesh(video.mesh_world, points)
    assert len(points) > 100_000
    assert np.median(dist) <= 0.01 and np.percentile(dist, 95) <= 0.01


def test_consumers_use_each_frames_own_intrinsics(video, scene):
    """BEV fusion and view selection on upright frames of both shapes (scene-level intrinsics
    are None for this reader: a consumer reading them would fail)."""
    assert scene.color_intrinsics is None and scene.depth_intrinsics is None
    points, _ = fuse_scene_points(scene, BevConfig(fusion_depth_stride=2))
    dist = distance_to_mesh(scene.mesh_aligned(), points)
    assert len(points) > 20_000 and np.percentile(dist, 95) <= 0.01
    picks = choose_views(scene, 4, "max-coverage")
    assert len(picks) == 4 and set(picks) <= set(scene.frame_ids())


def test_room_is_aligned_by_its_wall_yaw_and_boxes_round_trip(video, scene):
    np.testing.assert_allclose(scene.T_aligned_world, yaw_pose(-YAW_DEG), atol=1e-4)
    t_aligned = scene.T_aligned_world[:3, :3] @ video.T_world_room[:3, 3]  # room origin
    assert [o.object_id for o in scene.objects] == [o.object_id for o in video.objects]
    for got, obj in zip(scene.objects, video.objects, strict=True):
        assert got.label == obj.label
        np.testing.assert_allclose(got.box_6[:3], np.asarray(obj.center_3) + t_aligned, atol=1e-3)
        np.testing.assert_allclose(got.box_6[3:], obj.size_3, atol=1e-3)
    # the aligned mesh is the generator's room mesh (walls along the axes), shifted only
    room = video.mesh_world.transformed(np.linalg.inv(video.T_world_room)).vertices_N3
    np.testing.assert_allclose(scene.mesh_aligned().vertices_N3, room + t_aligned, atol=1e-3)


def test_missing_files_skip_frames_with_reasons_and_bad_sizes_name_the_file(video, tmp_path):
    copy = shutil.copytree(video.path, tmp_path / VID)
    frames = copy / f"{VID}_frames"
    (frames / "lowres_wide" / f"{VID}_{video.timestamps[0]}.png").unlink()
    (frames / "lowres_wide_intrinsics" / f"{VID}_{video.timestamps[1]}.pincam").unlink()
    pincam = frames / "lowres_wide_intrinsics" / f"{VID}_{video.timestamps[2]}.pincam"
    pincam.write_text("320 240 212 213.5 127.3 95.8\n")
    scene = load_scene(copy)
    assert scene.skipped_frame_ids() == [0, 1, NO_POSE]
    assert dict(scene.frame_source.skip_reasons) == {
        "no lowres_wide image": 1, "no .pincam intrinsics": 1, "no pose in lowres_wide.traj": 1
    }  # fmt: skip
    with pytest.raises(SceneError, match=r"lowres_wide/.*image is 256x192 but its \.pincam"):
        scene.load_frame(2)


def test_render_bev_cli_draws_the_room_wall_aligned_and_records_the_transform(video, tmp_path):
    split, out = video.path.parent, tmp_path / "bev"
    result = CliRunner().invoke(app, ["render-bev", str(split), "--out", str(out), "--size", "160"])
    assert result.exit_code == 1  # the video without assets fails, the other renders
    assert "1 done" in " ".join(result.output.split()) and "1 failed" in " ".join(
        result.output.split()
    )
    folder = out / f"arkitscenes-{VID}"
    image = np.asarray(Image.open(folder / "bev.png"))
    meta = json.loads((folder / "bev.json").read_text())
    assert (meta["scene_id"], meta["source"]) == (f"arkitscenes-{VID}", "mesh")
    T = np.array(meta["T_aligned_world"]).reshape(4, 4)
    np.testing.assert_allclose(T, yaw_pose(-YAW_DEG), atol=1e-4)
    # aligned: the 6 x 5 m room (a cabinet pokes 5 cm through a wall) + 0.1 m margins spans
    # 6.2 m; left at 30 degrees it would span 6 cos 30 + 5 sin 30 + 0.2 = 7.9 m
    assert abs(meta["meters_per_pixel"] * 160 - 6.2) < 0.02
    M = np.array(meta["world_to_pixel"]).reshape(3, 3)
    t_aligned = T[:3, :3] @ video.T_world_room[:3, 3]
    for obj in video.objects:
        x, y, _ = np.asarray(obj.center_3) + t_aligned
        col, row, _ = M @ [x, y, 1.0]
        top = np.minimum(np.asarray(obj.color_3) * 1.15, 255)  # demo's top-face shading
        assert np.abs(image[int(row), int(col)].astype(float) - top).max() < 25, obj.label
    summary = render_bev_scenes([split], out, BevConfig(size_px=160))  # resume by scene id
    assert [(r.name, r.status) for r in summary.results if r.status != "failed"] == [
        (f"arkitscenes-{VID}", "skipped")
    ]
    (failure,) = summary.failed
    assert failure.name == f"arkitscenes-{EMPTY_VID}" and "lowres_wide.traj" in failure.detail


def test_build_shards_makes_a_vision_only_clip_with_a_dot_free_key(video, tmp_path):
    split = video.path.parent
    summary = build_shards(
        ShardConfig(scenes=(split,), out=tmp_path / "s", sample=SampleConfig(views=4))
    )
    key = f"arkitscenes-{VID}"
    assert summary.samples == 1 and summary.vision_only == 1
    assert list(summary.failed) == [f"arkitscenes-{EMPTY_VID}"]
    manifest = read_manifest(tmp_path / "s")
    assert [k for s in manifest["shards"] for k in s["keys"]] == [key]
    names = [n for n, _ in read_tar(tmp_path / "s" / manifest["shards"][0]["name"])]
    assert names and all(n.split(".", 1)[0] == key for n in names)
    (ex,) = list(iter_examples(tmp_path / "s", split="train", vision_only_scenes=[key]))
    assert ex["instruction"] is None and tuple(ex["images"].shape[:1]) == (4,)
    assert NO_POSE not in ex["frame_ids"].tolist()
    assert ex["overlap"].diagonal().tolist() == [1.0] * 4
    # token positions: aligned frame, inside the (wall-aligned) room; boxes are the scene's
    T = load_scene(video.path).T_aligned_world
    lo = T[:3, :3] @ video.T_world_room[:3, 3] + [-3.0, -2.5, 0.0]
    xyz = ex["coords"][ex["coords_valid"]].numpy()
    assert float(ex["coords_valid"].float().mean()) > 0.8
    hi = lo + np.array([6.05, 5.05, 2.65])
    assert (xyz >= lo - 0.05).all() and (xyz <= hi).all()
    assert ex["labels"] == [o.label for o in video.objects]
    assert tuple(ex["boxes"].shape) == (len(video.objects), 6)
