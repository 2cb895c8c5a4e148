import shutil

import numpy as np
import pytest
from ross3d_data.core.errors import SceneError
from ross3d_data.datasets import find_scenes, load_scene
from ross3d_data.scannet import posed
from ross3d_data.scannet.scene import SensSource
from tiny_scenes import TINY_COLOR_K, TINY_DEPTH_K


def _check_tiny(scene, tiny, skipped=(2,)):
    assert scene.scene_id == "scene0000_00"
    np.testing.assert_allclose(scene.T_aligned_world, tiny.T_aligned_world, atol=1e-8)
    assert scene.color_intrinsics == TINY_COLOR_K and scene.depth_intrinsics == TINY_DEPTH_K
    assert scene.frame_ids() == [0, 1, 3, 4] and scene.skipped_frame_ids() == list(skipped)
    boxes = {o.object_id: (o.label, o.box_6) for o in scene.objects}
    assert sorted(boxes) == [7, 9] and boxes[7][0] == "chair"
    for oid, box in tiny.boxes.items():
        np.testing.assert_allclose(boxes[oid][1], box, atol=1e-5)
    f = scene.load_frame(3)
    ref = tiny.frames[3]
    np.testing.assert_array_equal(f.depth_mm_HW, ref.depth_mm_HW)
    np.testing.assert_allclose(f.T_world_cam, ref.T_world_cam, atol=1e-6)
    np.testing.assert_allclose(
        scene.T_aligned_cam(3), tiny.T_aligned_world @ ref.T_world_cam, atol=1e-6
    )


def test_raw_scan_with_sens_only(tiny_scene):
    tiny = tiny_scene()
    scene = load_scene(tiny.path)
    assert isinstance(scene.frame_source, SensSource)
    _check_tiny(scene, tiny)
    mesh = scene.mesh_aligned()
    A = tiny.T_aligned_world
    np.testing.assert_allclose(
        mesh.vertices_N3, tiny.vertices_raw @ A[:3, :3].T + A[:3, 3], atol=1e-5
    )
    with pytest.raises(SceneError, match=r"scene0000_00\.sens: frame 2 is not a valid frame"):
        scene.load_frame(2)


def test_posed_folder_in_scene_dir_is_preferred(tiny_scene):
    tiny = tiny_scene(export=True)
    scene = load_scene(tiny.path)
    assert scene.frame_source.path == tiny.path
    _check_tiny(scene, tiny, skipped=())
    posed.write_frame(tiny.path, tiny.frames[2])  # ScanNet's exporter writes -inf poses too
    scene = load_scene(tiny.path)
    _check_tiny(scene, tiny, skipped=(2,))
    with pytest.raises(SceneError, match="frame 2 has an invalid"):
        scene.T_aligned_cam(2)


def test_frames_dir_elsewhere(tiny_scene, tmp_path):
    tiny = tiny_scene(export=True, root=tmp_path / "scans")
    frames_root = tmp_path / "frames"
    frames_root.mkdir()
    for sub in ("color", "depth", "pose", "intrinsic"):
        shutil.move(tiny.path / sub, frames_root / sub)
    (tiny.path / "scene0000_00.sens").unlink()
    _check_tiny(load_scene(tiny.path, frames_dir=frames_root), tiny, skipped=())
    nested = tmp_path / "export"
    nested.mkdir()
    shutil.move(frames_root, nested / "scene0000_00")  # OUT/<scene_id>/ as export-frames writes
    assert load_scene(tiny.path, frames_dir=nested).frame_source.path == nested / "scene0000_00"
    with pytest.raises(SceneError, match="no posed-image folder for scene0000_00"):
        load_scene(tiny.path, frames_dir=tmp_path)


def test_mesh_only_scan_uses_meta_intrinsics(tiny_scene):
    tiny = tiny_scene()
    (tiny.path / "scene0000_00.sens").unlink()
    scene = load_scene(tiny.path)
    assert scene.frame_ids() == [] and len(scene.objects) == 2
    assert scene.color_intrinsics == TINY_COLOR_K
    with pytest.raises(SceneError, match="scene has no frames"):
        scene.load_frame(0)


def test_demo_scene_gt_boxes_in_aligned_frame(demo_scenes):
    from ross3d_data.synthetic.scenes import demo_alignment, demo_layout

    for k, path in enumerate(demo_scenes):
        scene = load_scene(path)
        assert not np.allclose(scene.T_aligned_world, np.eye(4))
        np.testing.assert_allclose(scene.T_aligned_world, demo_alignment(k), atol=1e-7)
        layout = demo_layout(k)
        assert [(o.object_id, o.label) for o in scene.objects] == [
            (o.object_id, o.label) for o in layout
        ]
        for got, want in zip(scene.objects, layout, strict=True):
            np.testing.assert_allclose(got.box_6, want.box_6, atol=1e-4)


def test_demo_depth_backprojects_inside_the_room(demo_scenes):
    from ross3d_data.synthetic.scenes import CEILING_Z, ROOM_X, ROOM_Y

    scene = load_scene(demo_scenes[0])
    K = scene.depth_intrinsics
    for fid in scene.frame_ids()[::10]:
        f = scene.load_frame(fid)
        v, u = np.nonzero(f.depth_mm_HW)
        z = f.depth_mm_HW[v, u] / 1000.0
        pts_cam = np.stack([(u + 0.5 - K.cx) / K.fx * z, (v + 0.5 - K.cy) / K.fy * z, z], 1)
        T = scene.T_aligned_cam(fid)
        p = pts_cam @ T[:3, :3].T + T[:3, 3]
        assert len(p) == K.width * K.height  # closed room: every ray hits something
        tol = 0.01
        assert p[:, 0].min() > -ROOM_X / 2 - tol and p[:, 0].max() < ROOM_X / 2 + tol
        assert p[:, 1].min() > -ROOM_Y / 2 - tol and p[:, 1].max() < ROOM_Y / 2 + tol
        assert p[:, 2].min() > -tol and p[:, 2].max() < CEILING_Z + tol


def test_find_scenes(tiny_scene, tmp_path):
    a = tiny_scene(name="scene0001_00").path
    b = tiny_scene(name="scene0000_00").path
    (tmp_path / "notes").mkdir()
    assert find_scenes(tmp_path) == [b, a]
    assert find_scenes(a) == [a]
    with pytest.raises(SceneError, match="no scene folders"):
        find_scenes(tmp_path / "notes")
    with pytest.raises(SceneError, match="not a directory"):
        find_scenes(tmp_path / "nope")


def test_not_a_scene(tmp_path):
    with pytest.raises(SceneError, match="not a scene"):
        load_scene(tmp_path)


def test_real_tum_sample(real_data):
    scene = load_scene(real_data)
    assert scene.scene_id == "tum_fr3_teddy" and scene.mesh_aligned() is None
    assert scene.objects == [] and np.array_equal(scene.T_aligned_world, np.eye(4))
    ids = scene.frame_ids()
    assert ids == list(range(19))
    assert scene.color_intrinsics.fx == pytest.approx(535.4)
    assert (scene.color_intrinsics.width, scene.color_intrinsics.height) == (640, 480)
    assert all(np.isfinite(scene.T_aligned_cam(i)).all() for i in ids)
    f = scene.load_frame(18)
    assert f.color_HW3.shape == (480, 640, 3) and f.depth_mm_HW.dtype == np.uint16
    valid = f.depth_mm_HW[f.depth_mm_HW > 0]
    assert (
        valid.size / f.depth_mm_HW.size > 0.5 and 300 < np.median(valid) < 5000
    )  # metres-scale room
