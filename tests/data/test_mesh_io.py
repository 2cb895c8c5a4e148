"""Mesh files in other formats (ross3d_data.mesh_io: our PLY reader for ScanNet PLY, trimesh for
the rest), importing a foreign mesh into a scene, exporting a scene's geometry."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from ross3d_data.bev.fusion import fuse_scene_points
from ross3d_data.bev.grid import BevConfig
from ross3d_data.cli import app
from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Mesh
from ross3d_data.datasets import load_scene
from ross3d_data.datasets.meshes import read_mesh
from ross3d_data.mesh_io import export_scene_geometry, import_mesh, write_mesh
from ross3d_data.scannet import files as scannet
from ross3d_data.scannet.ply import read_ply, write_ply
from typer.testing import CliRunner

V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
C = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
TETRA = Mesh(V, C, F)


def _same(mesh: Mesh, colours: bool = True) -> None:
    np.testing.assert_array_equal(mesh.vertices_N3, V)
    np.testing.assert_array_equal(mesh.faces_F3, F)
    if colours:
        np.testing.assert_array_equal(mesh.colors_N3, C)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_round_trip_keeps_geometry_and_colours(tmp_path, suffix):
    _same(read_mesh(write_mesh(tmp_path / f"m{suffix}", TETRA)))


def test_point_clouds_round_trip_as_ply_and_glb(tmp_path):
    cloud = Mesh(V, C, np.zeros((0, 3), np.int64))
    for suffix in (".ply", ".glb"):
        got = read_mesh(write_mesh(tmp_path / f"p{suffix}", cloud))
        assert len(got.faces_F3) == 0
        np.testing.assert_array_equal(got.vertices_N3, V)
        np.testing.assert_array_equal(got.colors_N3, C)
    with pytest.raises(ValueError, match=r"cannot write a point cloud as '\.obj'"):
        write_mesh(tmp_path / "p.obj", cloud)


def test_ply_variants_and_read_only_formats_go_through_trimesh(tmp_path):
    source = trimesh.Trimesh(V, F, vertex_colors=C, process=False)
    source.export(tmp_path / "ascii.ply", encoding="ascii")
    _same(read_mesh(tmp_path / "ascii.ply"))  # our reader refuses ASCII PLY; trimesh reads it
    source.export(tmp_path / "m.off")
    _same(read_mesh(tmp_path / "m.off"), colours=False)
    source.export(tmp_path / "m.stl")  # unindexed triangles, no colour
    stl = read_mesh(tmp_path / "m.stl")
    tris = {tuple(map(tuple, stl.vertices_N3[f])) for f in stl.faces_F3}
    assert tris == {tuple(map(tuple, V[f])) for f in F}
    assert (stl.colors_N3 == 128).all()


def test_scannet_ply_is_read_by_our_reader_not_trimesh(tmp_path, monkeypatch):
    write_ply(tmp_path / "s.ply", TETRA)

    def no_trimesh(*args, **kwargs):
        raise AssertionError("trimesh must not read ScanNet-style PLY")

    monkeypatch.setattr(trimesh, "load", no_trimesh)
    _same(read_mesh(tmp_path / "s.ply"))


def test_bad_files_are_scene_errors_naming_the_file(tmp_path):
    cases = {
        "nan.obj": (b"v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "1 of 3 vertices have non-finite"),
        "bad.glb": (b"glTF\x02\x00\x00\x00garbage", "trimesh cannot read it"),
        "empty.obj": (b"# nothing\n", "no triangle mesh and no point cloud"),
        "m.fbx": (b"x", "unsupported mesh format '.fbx'"),
    }
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SceneError, match=why) as err:
            read_mesh(tmp_path / name)
        assert err.value.path == tmp_path / name
    write_ply(tmp_path / "cut.ply", TETRA)
    (tmp_path / "cut.ply").write_bytes((tmp_path / "cut.ply").read_bytes()[:-10])
    with pytest.raises(SceneError, match="truncated"):  # our reader's message, no fallback
        read_mesh(tmp_path / "cut.ply")
    with pytest.raises(SceneError, match="not found"):
        read_mesh(tmp_path / "missing.obj")


def test_import_mesh_turns_a_y_up_gltf_into_the_scene_mesh(tmp_path):
    write_mesh(tmp_path / "room.glb", TETRA)
    scene_dir = tmp_path / "room0000_00"
    out = import_mesh(tmp_path / "room.glb", scene_dir, up="y")
    assert out == scannet.mesh_path(scene_dir)
    got = read_ply(out)  # y-up (x, y, z) -> z-up (x, -z, y): (0, 1, 0) is now up
    np.testing.assert_array_equal(got.vertices_N3, [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, -1, 0]])
    np.testing.assert_array_equal(got.colors_N3, C)
    with pytest.raises(FileExistsError, match="already there"):
        import_mesh(tmp_path / "room.glb", scene_dir)
    _same(read_ply(import_mesh(tmp_path / "room.glb", scene_dir, overwrite=True)))
    write_mesh(tmp_path / "cloud.ply", Mesh(V, C, np.zeros((0, 3), np.int64)))
    with pytest.raises(SceneError, match="point cloud cannot stand in"):
        import_mesh(tmp_path / "cloud.ply", tmp_path / "other", overwrite=True)


def test_export_scene_geometry_aligned_mesh_and_fused_points(tiny_scene, tmp_path):
    scene_dir = tiny_scene().path
    scene = load_scene(scene_dir)
    mesh = read_mesh(export_scene_geometry(scene_dir, tmp_path / "aligned.glb"))
    np.testing.assert_allclose(mesh.vertices_N3, scene.mesh_aligned().vertices_N3, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces_F3, scene.mesh_aligned().faces_F3)
    fused = read_mesh(export_scene_geometry(scene_dir, tmp_path / "fused.ply", "fused"))
    points, colors = fuse_scene_points(scene, BevConfig())
    np.testing.assert_allclose(fused.vertices_N3, points, atol=1e-6)
    np.testing.assert_array_equal(fused.colors_N3, colors)


def test_mesh_cli_commands(tiny_scene, tmp_path):
    runner = CliRunner()
    scene_dir = tiny_scene().path
    r = runner.invoke(app, ["export-mesh", str(scene_dir), "-o", str(tmp_path / "m.obj")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["import-mesh", str(tmp_path / "m.obj"), str(tmp_path / "s1")])
    assert r.exit_code == 0, r.output
    assert read_mesh(scannet.mesh_path(tmp_path / "s1")).faces_F3.shape == (4, 3)
    r = runner.invoke(app, ["export-mesh", str(scene_dir), "-o", "x.ply", "--source", "nope"])
    assert r.exit_code == 2 and "'nope' is not one of 'mesh'," in r.output
    r = runner.invoke(app, ["import-mesh", str(tmp_path / "m.obj"), str(tmp_path / "s1")])
    assert r.exit_code == 2 and "already there" in r.output


def test_real_tum_sample_fused_points_export_for_a_viewer(real_data, tmp_path):
    """The real RGB-D sample has no mesh: its fused points (what its BEV is made from) export
    as GLB and read back unchanged."""
    with pytest.raises(SceneError, match="no mesh"):
        export_scene_geometry(real_data, tmp_path / "mesh.glb")
    path = export_scene_geometry(real_data, tmp_path / "fused.glb", "fused")
    points, colors = fuse_scene_points(load_scene(real_data), BevConfig())
    got = read_mesh(path)
    assert len(got.vertices_N3) == len(points) > 10_000 and len(got.faces_F3) == 0
    np.testing.assert_allclose(got.vertices_N3, points, atol=1e-6)
    np.testing.assert_array_equal(got.colors_N3, colors)
    shipped = read_mesh(real_data / "scene_fused_pointcloud.ply")  # vertex-only binary PLY
    assert len(shipped.vertices_N3) == 185_819 and len(shipped.faces_F3) == 0
    assert shipped.colors_N3.std() > 0  # real colours, not the grey default
