"""BEV rendering: known pixels of synthetic meshes and RGB-D scenes, files, and real TUM data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ross3d_data.bev.grid import BevConfig, BevResult, grid_for_extent
from ross3d_data.bev.render import (
    render_bev,
    render_mesh_bev,
    render_points_bev,
    write_bev,
)
from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Frame, Intrinsics, Mesh
from ross3d_data.datasets import load_scene
from ross3d_data.scannet.ply import write_ply
from ross3d_data.scannet.posed import write_frame, write_intrinsics

GREY, RED, BLUE, WHITE = (128, 128, 128), (255, 0, 0), (0, 0, 255), (255, 255, 255)


def quad(x0, x1, y0, y1, z, color) -> Mesh:
    """Horizontal rectangle at height z (two triangles)."""
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float32)
    return Mesh(v, np.tile(np.array(color, np.uint8), (4, 1)), np.array([[0, 1, 2], [0, 2, 3]]))


def box(centre, size, color) -> Mesh:
    """Closed axis-aligned box (12 triangles)."""
    c, h = np.asarray(centre, np.float32), np.asarray(size, np.float32) / 2
    corners = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float32)
    faces = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
             [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]  # fmt: skip
    return Mesh(c + corners * h, np.tile(np.array(color, np.uint8), (8, 1)), np.array(faces))


def merge(*meshes: Mesh) -> Mesh:
    offsets = np.cumsum([0] + [len(m.vertices_N3) for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.vertices_N3 for m in meshes]),
        np.concatenate([m.colors_N3 for m in meshes]),
        np.concatenate([m.faces_F3 + o for m, o in zip(meshes, offsets, strict=True)]),
    )


def room(with_ceiling: bool = True) -> Mesh:
    """4 x 3 m grey floor, red box at (1, 2), blue box at (3, 0.8), white ceiling at 2.5 m."""
    parts = [
        quad(0, 4, 0, 3, 0.0, GREY),
        box((1.0, 2.0, 0.4), (0.4, 0.4, 0.8), RED),
        box((3.0, 0.8, 0.9), (0.3, 0.3, 1.8), BLUE),  # a 1.8 m wardrobe stays below the cut
    ]
    if with_ceiling:
        parts.append(quad(0, 4, 0, 3, 2.5, WHITE))
    return merge(*parts)


def pixel_of(result: BevResult, x: float, y: float) -> tuple[int, int]:
    col, row, _ = result.world_to_pixel_33 @ np.array([x, y, 1.0])
    return int(np.floor(row)), int(np.floor(col))


def has_open3d() -> bool:
    try:
        import open3d  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = ["jit", "raster", pytest.param("open3d", marks=pytest.mark.skipif(not has_open3d(), reason="open3d not importable"))]  # fmt: skip


def test_grid_maps_pixel_centres_to_half_integers():
    # extent 4 x 2 m, margin 0.5 -> side 5 m over 40 px = 0.125 m/px, centred on (2, 1)
    grid = grid_for_extent(np.array([0.0, 0.0]), np.array([4.0, 2.0]), 40, 0.5)
    assert grid.meters_per_pixel == pytest.approx(0.125)
    assert (grid.x_left, grid.y_top) == pytest.approx((-0.5, 3.5))
    M = grid.world_to_pixel_33
    # centre of the top-left pixel
    assert pytest.approx([0.5, 0.5, 1]) == M @ [-0.5 + 0.0625, 3.5 - 0.0625, 1]
    # +x goes right, +y goes up (row decreases)
    assert pytest.approx([4.0, 20.0, 1]) == M @ [0.0, 1.0, 1]
    assert pytest.approx([12.0, 12.0, 1]) == M @ [1.0, 2.0, 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_objects_land_at_mapped_pixels(backend):
    res = render_mesh_bev(room(), BevConfig(size_px=96, backend=backend))
    img = res.image_HW3
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    assert tuple(img[pixel_of(res, 1.0, 2.0)]) == RED
    assert tuple(img[pixel_of(res, 3.0, 0.8)]) == BLUE
    assert tuple(img[pixel_of(res, 2.0, 1.5)]) == GREY  # floor, the white ceiling is cut away
    assert tuple(img[pixel_of(res, 0.2, 0.2)]) == GREY
    # orientation: the red box (larger y, smaller x) is above and left of the blue one
    (r_red, c_red), (r_blue, c_blue) = pixel_of(res, 1.0, 2.0), pixel_of(res, 3.0, 0.8)
    assert r_red < r_blue and c_red < c_blue
    # the red box covers 0.4 m: about 0.4 / mpp pixels along a row through its centre
    row = img[pixel_of(res, 1.0, 2.0)[0]]
    n_red = np.all(row == RED, axis=1).sum()
    assert abs(n_red - 0.4 / res.meters_per_pixel) <= 1.5
    assert res.source == "mesh" and res.backend == backend


def test_ceiling_cut_is_measured_from_the_floor():
    mesh = room()
    res = render_mesh_bev(mesh, BevConfig(size_px=64))
    assert res.floor_z == pytest.approx(0.0)
    assert res.ceiling_z == pytest.approx(2.0)
    assert not np.all(res.image_HW3 == WHITE, axis=2).any()  # no ceiling pixel survives
    # raise the whole scene by 10 m: the cut follows the floor, the picture is unchanged
    lifted = Mesh(mesh.vertices_N3 + np.float32([0, 0, 10]), mesh.colors_N3, mesh.faces_F3)
    res_lifted = render_mesh_bev(lifted, BevConfig(size_px=64))
    assert res_lifted.ceiling_z == pytest.approx(12.0)
    np.testing.assert_array_equal(res_lifted.image_HW3, res.image_HW3)
    # a cut above the ceiling shows the ceiling everywhere over the floor
    high = render_mesh_bev(mesh, BevConfig(size_px=64, ceiling_above_floor_m=3.0))
    assert tuple(high.image_HW3[pixel_of(high, 1.0, 2.0)]) == WHITE
    # a shelf board at 1.2 m hides the floor under a 2 m cut and is removed by a 1 m cut
    shelf = merge(room(with_ceiling=False), quad(2.0, 2.5, 2.0, 2.5, 1.2, WHITE))
    low = render_mesh_bev(shelf, BevConfig(size_px=64, ceiling_above_floor_m=1.0))
    default = render_mesh_bev(shelf, BevConfig(size_px=64))
    assert tuple(default.image_HW3[pixel_of(default, 2.25, 2.25)]) == WHITE
    assert tuple(low.image_HW3[pixel_of(low, 2.25, 2.25)]) == GREY
    assert tuple(low.image_HW3[pixel_of(low, 1.0, 2.0)]) == RED  # the 0.8 m box stays


def test_empty_space_is_black_and_black_surfaces_are_not():
    # an L-shaped floor: the missing quarter and the margin must be exactly black
    mesh = merge(quad(0, 2, 0, 1, 0.0, GREY), quad(0, 1, 1, 2, 0.0, (0, 0, 0)))
    res = render_mesh_bev(mesh, BevConfig(size_px=50, margin_m=0.2))
    img = res.image_HW3
    assert np.all(img[pixel_of(res, 1.5, 1.5)] == 0)  # the hole
    assert np.all(img[pixel_of(res, -0.1, 0.5)] == 0)  # the margin
    assert np.all(img[0] == 0) and np.all(img[:, -1] == 0)
    # a black surface is drawn (1, 1, 1), so black always means empty
    assert tuple(img[pixel_of(res, 0.5, 1.5)]) == (1, 1, 1)
    expected_cover = 3.0 / 2.4**2  # 3 m2 of floor in a 2.4 m square image
    assert img.any(axis=2).mean() == pytest.approx(expected_cover, abs=0.02)


def noisy_terrain_with_box_and_ceiling(seed: int) -> Mesh:
    """A bumpy, randomly coloured 3 x 2 m floor, a red box poking through it and a blue ceiling
    above the cut (odd extents, so that no pixel centre falls exactly on the mesh outline)."""
    rng = np.random.default_rng(seed)
    n = 40
    xs, ys = np.meshgrid(np.linspace(0, 3.0137, n), np.linspace(0, 2.0071, n), indexing="ij")
    zs = rng.normal(0, 0.05, xs.shape) + 0.3 * np.sin(xs * 2)
    verts = np.stack([xs, ys, zs], -1).reshape(-1, 3).astype(np.float32)
    idx = np.arange(n * n).reshape(n, n)
    q = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    faces = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    colors = rng.integers(0, 256, (len(verts), 3)).astype(np.uint8)
    ceiling = box((1.5, 1.0, 2.6), (3.0, 2.0, 0.02), (0, 0, 255))
    return merge(Mesh(verts, colors, faces), box((1.5, 1.0, 0.5), (0.5, 0.7, 1.0), RED), ceiling)


OPEN3D_PAIR = pytest.param(
    ("raster", "open3d"),
    marks=pytest.mark.skipif(not has_open3d(), reason="open3d not importable"),
)


@pytest.mark.parametrize("backends", [("jit", "raster"), OPEN3D_PAIR])
def test_backends_agree_on_a_noisy_mesh(backends):
    mesh = noisy_terrain_with_box_and_ceiling(seed=0)
    a, b = (render_mesh_bev(mesh, BevConfig(size_px=80, backend=k)) for k in backends)
    np.testing.assert_array_equal(a.world_to_pixel_33, b.world_to_pixel_33)
    hit_a, hit_b = a.image_HW3.any(axis=2), b.image_HW3.any(axis=2)
    assert (hit_a != hit_b).sum() <= 2  # pixel centres exactly on an outline edge may differ
    both = hit_a & hit_b
    diff = np.abs(a.image_HW3.astype(int) - b.image_HW3.astype(int)).max(axis=2)[both]
    assert diff.max() <= 1  # float32 vs float64 barycentrics round differently at most
    for res in (a, b):  # the ceiling above the cut is gone in both
        assert not (res.image_HW3 == (0, 0, 255)).all(axis=2).any()


def test_supersampling_keeps_geometry_and_averages_edges():
    res = render_mesh_bev(room(), BevConfig(size_px=64, supersample=3))
    assert res.image_HW3.shape == (64, 64, 3)
    assert tuple(res.image_HW3[pixel_of(res, 1.0, 2.0)]) == RED
    # the red box's outline pixels mix red and grey: more distinct colours than without it
    plain = render_mesh_bev(room(), BevConfig(size_px=64))
    n_colors = len(np.unique(res.image_HW3.reshape(-1, 3), axis=0))
    assert n_colors > len(np.unique(plain.image_HW3.reshape(-1, 3), axis=0))


def test_points_zbuffer_keeps_highest_point_below_the_cut():
    floor = np.array([[x, y, 0.0] for x in np.linspace(0, 2, 41) for y in np.linspace(0, 2, 41)])
    pts = np.concatenate([floor, [[1.0, 1.0, 0.5], [1.0, 1.0, 1.0], [1.0, 1.0, 2.5]]])
    cols = np.zeros((len(pts), 3), np.uint8)
    cols[: len(floor)] = GREY
    cols[-3:] = [BLUE, RED, WHITE]
    res = render_points_bev(pts, cols, BevConfig(size_px=41, margin_m=0.0, fusion_fill_holes=0))
    assert res.source == "fusion"
    assert tuple(res.image_HW3[pixel_of(res, 1.0, 1.0)]) == RED  # 1.0 m beats 0.5 m; 2.5 m cut
    assert tuple(res.image_HW3[pixel_of(res, 0.3, 1.7)]) == GREY


def write_mesh_scene(folder: Path, mesh_world: Mesh, T_aligned_world: np.ndarray) -> Path:
    """A raw scan folder with only a mesh and a meta file (no frames)."""
    folder.mkdir(parents=True)
    write_ply(folder / f"{folder.name}_vh_clean_2.ply", mesh_world)
    align = " ".join(f"{v:.9f}" for v in T_aligned_world.reshape(-1))
    (folder / f"{folder.name}.txt").write_text(
        f"axisAlignment = {align}\ncolorWidth = 64\ncolorHeight = 48\nfx_color = 50\n"
        "fy_color = 50\nmx_color = 32\nmy_color = 24\ndepthWidth = 64\ndepthHeight = 48\n"
        "fx_depth = 50\nfy_depth = 50\nmx_depth = 32\nmy_depth = 24\n"
    )
    return folder


def test_axis_alignment_is_applied(tmp_path):
    aligned = room()
    angle = np.deg2rad(30.0)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    T[:3, 3] = [1.5, -2.0, 0.3]
    world = aligned.transformed(np.linalg.inv(T))  # what a mis-aligned scan stores on disk
    cfg = BevConfig(size_px=64)
    ref = render_bev(load_scene(write_mesh_scene(tmp_path / "scene_a", aligned, np.eye(4))), cfg)
    got = render_bev(load_scene(write_mesh_scene(tmp_path / "scene_b", world, T)), cfg)
    np.testing.assert_allclose(got.world_to_pixel_33, ref.world_to_pixel_33, atol=1e-4)
    differ = np.any(got.image_HW3 != ref.image_HW3, axis=2)
    assert differ.sum() <= 3  # float32 round trip may flip a pixel centre on an edge
    raw = render_mesh_bev(world, cfg)  # without the alignment the picture is different
    assert np.any(raw.image_HW3 != ref.image_HW3, axis=2).mean() > 0.2


def test_bev_files_round_trip(tmp_path):
    res = render_mesh_bev(room(), BevConfig(size_px=48))
    png, meta_file = write_bev(res, "scene0042_00", tmp_path / "out")
    assert png == tmp_path / "out" / "scene0042_00" / "bev.png"
    np.testing.assert_array_equal(np.asarray(Image.open(png)), res.image_HW3)
    meta = json.loads(meta_file.read_text())
    assert meta["scene_id"] == "scene0042_00"
    assert (meta["width"], meta["height"]) == (48, 48)
    assert meta["meters_per_pixel"] == pytest.approx((4 + 0.2) / 48)
    M = np.array(meta["world_to_pixel"]).reshape(3, 3)
    np.testing.assert_allclose(M, res.world_to_pixel_33)
    assert pytest.approx(res.world_to_pixel_33 @ [1.0, 2.0, 1.0]) == M @ [1.0, 2.0, 1.0]
    assert meta["ceiling_z"] == pytest.approx(2.0) and meta["floor_z"] == pytest.approx(0.0)
    assert (meta["backend"], meta["source"]) == ("jit", "mesh")


def T_looking_down(x: float, y: float, height: float) -> np.ndarray:
    """Camera-to-world pose at (x, y, height) looking straight down (image up = world +y)."""
    T = np.eye(4)
    T[:3, :3] = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]]).T  # columns: cam x, y, z in world
    T[:3, 3] = [x, y, height]
    return T


def write_rgbd_scene(folder: Path) -> Path:
    """Two top-down frames of a grey floor with a red 0.4 m square centred at (1.0, 0.5).

    Depth is 80x60, colour 160x120 (different sizes, like ScanNet): colour pixels are mapped
    through the colour intrinsics.
    """
    depth_k = Intrinsics(60.0, 60.0, 39.5, 29.5, 80, 60)
    color_k = Intrinsics(120.0, 120.0, 79.5, 59.5, 160, 120)
    write_intrinsics(folder, color_k, depth_k)
    height = 1.5
    for fid, cam_x in enumerate([0.8, 1.4]):
        T = T_looking_down(cam_x, 0.4, height)
        v, u = np.mgrid[0:120, 0:160]
        x = cam_x + (u - color_k.cx) / color_k.fx * height
        y = 0.4 - (v - color_k.cy) / color_k.fy * height
        red = (np.abs(x - 1.0) <= 0.2) & (np.abs(y - 0.5) <= 0.2)
        color = np.where(red[..., None], np.uint8(RED), np.uint8(GREY)).astype(np.uint8)
        depth = np.full((60, 80), int(height * 1000), np.uint16)
        depth[:5] = 0  # invalid rows are skipped
        write_frame(folder, Frame(fid, color, depth, T), jpeg_quality=100)
    return folder


def test_fusion_renders_posed_rgbd_scene(tmp_path):
    scene = load_scene(write_rgbd_scene(tmp_path / "capture"))
    assert scene.mesh_aligned() is None
    res = render_bev(scene, BevConfig(size_px=64, fusion_depth_stride=1))
    assert (res.source, res.backend) == ("fusion", "zbuffer")
    assert res.floor_z == pytest.approx(0.0, abs=1e-3)
    r, c = pixel_of(res, 1.0, 0.5)
    assert np.abs(res.image_HW3[r, c].astype(int) - RED).max() <= 40  # JPEG tolerance
    r, c = pixel_of(res, 0.3, 0.3)
    assert np.abs(res.image_HW3[r, c].astype(int) - GREY).max() <= 20
    # footprint of the depth pixel centres: x from 0.8 - 39.5 / 60 * 1.5 to 1.4 + 39.5 / 60 * 1.5
    # (2.575 m, the larger side; y spans only 1.35 m), plus two 0.1 m margins
    side = res.meters_per_pixel * 64
    assert side == pytest.approx(0.6 + 2 * 39.5 / 60 * 1.5 + 0.2, abs=1e-4)
    assert res.image_HW3.any(axis=2).mean() > 0.25


def test_scene_without_mesh_or_valid_depth_fails_clearly(tmp_path):
    folder = write_rgbd_scene(tmp_path / "capture")
    for fid in (0, 1):  # wipe the depth: nothing to fuse
        Image.fromarray(np.zeros((60, 80), np.uint16)).save(folder / "depth" / f"{fid}.png")
    with pytest.raises(SceneError, match="no valid depth") as info:
        render_bev(load_scene(folder), BevConfig(size_px=32))
    assert str(folder) in str(info.value)


def test_config_validation():
    with pytest.raises(ValueError, match="backend"):
        BevConfig(backend="vulkan")
    with pytest.raises(ValueError, match="ceiling"):
        BevConfig(ceiling_above_floor_m=0.0)
    with pytest.raises(ValueError, match="size_px"):
        BevConfig(size_px=2)


def test_real_tum_teddy_renders_by_fusion(real_data):
    scene = load_scene(real_data)
    res = render_bev(scene, BevConfig())
    img = res.image_HW3
    assert res.source == "fusion" and img.shape == (432, 432, 3)
    hit = img.any(axis=2)
    assert 0.25 < hit.mean() < 0.9  # a real floor area, but not everything
    # the point seen at each camera's image centre (the teddy) lands on a non-black pixel
    k = scene.depth_intrinsics
    for fid in scene.frame_ids():
        d = scene.load_frame(fid).depth_mm_HW[240, 320] / 1000.0
        if d == 0:
            continue
        p = scene.T_aligned_cam(fid) @ [(320 - k.cx) / k.fx * d, (240 - k.cy) / k.fy * d, d, 1]
        r, c = pixel_of(res, p[0], p[1])
        assert hit[r - 2 : r + 3, c - 2 : c + 3].mean() >= 0.6, fid


def test_fusing_demo_frames_reproduces_the_mesh_bev(demo_scenes):
    # the demo's RGB-D frames are rendered from its mesh: fusing them must redraw the same plan
    from ross3d_data.bev.fusion import render_fused_bev

    scene = load_scene(demo_scenes[0])
    cfg = BevConfig(size_px=160)
    mesh_bev = render_bev(scene, cfg)
    fused = render_fused_bev(scene, cfg)
    assert (mesh_bev.source, fused.source) == ("mesh", "fusion")
    assert fused.floor_z == pytest.approx(mesh_bev.floor_z, abs=0.02)
    rows, cols = np.nonzero(fused.image_HW3.any(axis=2))
    assert len(rows) > 0.5 * 160 * 160
    # every fused pixel centre, mapped through the aligned frame into the mesh BEV
    xy1 = np.linalg.inv(fused.world_to_pixel_33) @ np.stack([cols + 0.5, rows + 0.5, 0 * rows + 1])
    c2, r2, _ = np.floor(mesh_bev.world_to_pixel_33 @ xy1).astype(int)
    inside = (r2 >= 0) & (r2 < 160) & (c2 >= 0) & (c2 < 160)
    assert inside.mean() > 0.97
    diff = np.abs(
        fused.image_HW3[rows[inside], cols[inside]].astype(int)
        - mesh_bev.image_HW3[r2[inside], c2[inside]]
    ).max(axis=1)
    assert np.mean(diff <= 40) > 0.85  # JPEG, colour noise and object outlines differ a little


def test_open3d_backend_without_open3d_says_what_to_do(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "open3d", None)  # makes `import open3d` raise ImportError
    with pytest.raises(ImportError, match="backend 'raster'"):
        render_mesh_bev(room(), BevConfig(size_px=16, backend="open3d"))


def test_non_finite_mesh_is_rejected():
    mesh = room()
    verts = mesh.vertices_N3.copy()
    verts[3] = np.nan
    with pytest.raises(ValueError, match="1 non-finite vertices"):
        render_mesh_bev(Mesh(verts, mesh.colors_N3, mesh.faces_F3), BevConfig(size_px=16))
