import sys

import numpy as np
import pytest
from ross3d_data.core.records import Intrinsics, Mesh
from ross3d_data.datasets import load_scene
from ross3d_data.scannet.sens import iter_sens, read_sens_header
from ross3d_data.synthetic.raycast import MeshRaycaster, import_open3d
from ross3d_data.synthetic.scenes import (
    CEILING_Z,
    COLOR_K,
    DEPTH_K,
    INVALID_FRAMES,
    build_room,
    demo_alignment,
    demo_layout,
)


def test_raycast_known_square():
    # a 2x2 m square 2 m in front of an identity camera, corners red, green, blue, white
    v = np.array([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], np.float32)
    c = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    caster = MeshRaycaster(Mesh(v, c, np.array([[0, 1, 2], [0, 2, 3]])))
    K = Intrinsics(100.0, 100.0, 80.0, 60.0, 160, 120)
    color, depth = caster.render(K, np.eye(4))
    # pixel (u, v) centre sees x = (u + 0.5 - 80) / 100 * 2: the square spans u in [30, 130)
    assert depth[60, 80] == 2000 and depth[60, 29] == 0 and depth[60, 30] == 2000
    assert ((depth > 0).sum(), depth.max()) == (100 * 100, 2000)
    # barycentrics by hand: (u, v) = (30, 10) -> (x, y) = (-0.99, -0.99) = 0.995 red + 0.005 blue
    np.testing.assert_allclose(color[10, 30], [254, 0, 1], atol=1)
    np.testing.assert_allclose(color[109, 129], [1, 0, 254], atol=1)  # 0.005 red + 0.995 blue
    # (129, 60) -> (0.99, 0.01): 0.005 red + 0.49 green + 0.505 blue
    np.testing.assert_allclose(color[60, 129], [1, 125, 129], atol=1)
    # moving the camera 0.5 m towards the square (camera z = world z) shortens depth by 500 mm
    T = np.eye(4)
    T[2, 3] = 0.5
    assert caster.render(K, T)[1][60, 80] == 1500


def test_open3d_import_error_names_apt_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)
    with pytest.raises(ImportError, match=r"libusb-1\.0-0 libgl1 libegl1"):
        import_open3d()


def test_layout_and_room_are_deterministic_and_differ_per_scene():
    a, b = demo_layout(0), demo_layout(1)
    assert a == demo_layout(0) and a != b
    m1, _, _ = build_room(a, np.random.default_rng(5))
    m2, _, _ = build_room(a, np.random.default_rng(5))
    np.testing.assert_array_equal(m1.vertices_N3, m2.vertices_N3)
    np.testing.assert_array_equal(m1.colors_N3, m2.colors_N3)
    assert m1.vertices_N3[:, 2].max() == pytest.approx(CEILING_Z)
    wardrobe = next(o for o in a if o.label == "wardrobe")
    assert wardrobe.size_3[2] == pytest.approx(1.8)
    T = demo_alignment(1)
    assert np.allclose(T[2], [0, 0, 1, T[2, 3]]) and not np.allclose(T[:2, :2], np.eye(2))


def test_demo_scene_files(demo_scenes):
    d = demo_scenes[0]
    sens = d / f"{d.name}.sens"
    header = read_sens_header(sens)
    assert (header.num_frames, header.color_intrinsics, header.depth_intrinsics) == (
        80,
        COLOR_K,
        DEPTH_K,
    )
    bad = [
        r.frame_id
        for r in iter_sens(sens, with_images=False)
        if not np.isfinite(r.T_world_cam).all()
    ]
    assert bad == list(INVALID_FRAMES)
    scene = load_scene(d)
    ids = scene.frame_ids()
    assert ids == [i for i in range(0, 80, 2) if i not in INVALID_FRAMES]
    f = scene.load_frame(ids[3])
    assert f.color_HW3.shape == (240, 320, 3) and f.depth_mm_HW.shape == (120, 160)
    assert f.color_HW3.std() > 10  # furniture and patterned walls are visible
    mesh = scene.mesh_aligned()
    assert mesh.vertices_N3[:, 2].min() == pytest.approx(0, abs=1e-5)
    assert mesh.vertices_N3[:, 2].max() == pytest.approx(CEILING_Z, abs=1e-5)


def test_demo_frames_match_a_fresh_render(demo_scenes):
    scene = load_scene(demo_scenes[1])
    caster = MeshRaycaster(scene.mesh_aligned())
    fid = scene.frame_ids()[7]
    f = scene.load_frame(fid)
    _, depth = caster.render(scene.depth_intrinsics, scene.T_aligned_cam(fid))
    assert np.abs(depth.astype(int) - f.depth_mm_HW).max() <= 2  # pose text has 6 decimals
    color, _ = caster.render(scene.color_intrinsics, scene.T_aligned_cam(fid))
    assert np.abs(color.astype(int) - f.color_HW3).mean() < 3  # JPEG


def test_full_size_demo_has_scannet_frame_sizes(tmp_path):
    from ross3d_data.synthetic.scenes import make_demo

    (scene_dir,) = make_demo(tmp_path, n_scenes=1, n_frames=2, annotations=False, full_size=True)
    header = read_sens_header(scene_dir / f"{scene_dir.name}.sens")
    assert (header.color_intrinsics.width, header.color_intrinsics.height) == (1296, 968)
    assert (header.depth_intrinsics.width, header.depth_intrinsics.height) == (640, 480)
    frame = load_scene(scene_dir).load_frame(0)  # the posed export, read back
    assert frame.color_HW3.shape == (968, 1296, 3) and frame.depth_mm_HW.shape == (480, 640)
    assert frame.depth_mm_HW.any() and frame.color_HW3.any()
