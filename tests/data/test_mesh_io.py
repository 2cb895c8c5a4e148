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
from ross3d_data.mesh_io import (
    T_YUP_ZUP,
    export_scene_geometry,
    flat_area_by_axis,
    floor_evidence,
    import_mesh,
    write_mesh,
)
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


# TETRA's vertices written y-up as glTF requires: z-up (x, y, z) -> y-up (x, z, -y)
V_YUP = np.array([[0, 0, 0], [1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_round_trip_keeps_geometry_and_colours(tmp_path, suffix):
    _same(read_mesh(write_mesh(tmp_path / f"m{suffix}", TETRA)))


def test_glb_is_written_y_up_as_gltf_requires(tmp_path):
    got = read_mesh(write_mesh(tmp_path / "m.glb", TETRA))
    np.testing.assert_array_equal(got.vertices_N3, V_YUP)
    np.testing.assert_array_equal(got.faces_F3, F)
    np.testing.assert_array_equal(got.colors_N3, C)


def test_point_clouds_round_trip_as_ply_and_glb(tmp_path):
    cloud = Mesh(V, C, np.zeros((0, 3), np.int64))
    for suffix, expected in ((".ply", V), (".glb", V_YUP)):
        got = read_mesh(write_mesh(tmp_path / f"p{suffix}", cloud))
        assert len(got.faces_F3) == 0
        np.testing.assert_array_equal(got.vertices_N3, expected)
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
    # a glTF from elsewhere: TETRA's coordinates taken as y-up (glTF's convention)
    trimesh.Trimesh(V, F, vertex_colors=C, process=False).export(tmp_path / "room.glb")
    scene_dir = tmp_path / "room0000_00"
    imported = import_mesh(tmp_path / "room.glb", scene_dir)  # up: auto
    assert imported.path == scannet.mesh_path(scene_dir)
    assert (imported.up, imported.up_source) == ("y", "glTF is y-up by specification")
    got = read_ply(imported.path)  # y-up (x, y, z) -> z-up (x, -z, y): (0, 1, 0) is now up
    np.testing.assert_array_equal(got.vertices_N3, [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, -1, 0]])
    np.testing.assert_array_equal(got.colors_N3, C)
    with pytest.raises(FileExistsError, match="already there"):
        import_mesh(tmp_path / "room.glb", scene_dir)
    write_mesh(tmp_path / "ours.glb", TETRA)  # our GLB export: y-up, back to z-up on import
    _same(read_ply(import_mesh(tmp_path / "ours.glb", scene_dir, overwrite=True).path))
    write_mesh(tmp_path / "cloud.ply", Mesh(V, C, np.zeros((0, 3), np.int64)))
    with pytest.raises(SceneError, match="point cloud cannot stand in"):
        import_mesh(tmp_path / "cloud.ply", tmp_path / "other", overwrite=True)


def test_export_scene_geometry_aligned_mesh_and_fused_points(tiny_scene, tmp_path):
    scene_dir = tiny_scene().path
    scene = load_scene(scene_dir)
    mesh = read_mesh(export_scene_geometry(scene_dir, tmp_path / "aligned.glb"))
    x, y, z = scene.mesh_aligned().vertices_N3.T  # written y-up: (x, y, z) -> (x, z, -y)
    np.testing.assert_allclose(mesh.vertices_N3, np.stack([x, z, -y], 1), atol=1e-6)
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
    as GLB and read back (y-up, as glTF requires)."""
    with pytest.raises(SceneError, match="no mesh"):
        export_scene_geometry(real_data, tmp_path / "mesh.glb")
    path = export_scene_geometry(real_data, tmp_path / "fused.glb", "fused")
    points, colors = fuse_scene_points(load_scene(real_data), BevConfig())
    got = read_mesh(path)
    assert len(got.vertices_N3) == len(points) > 10_000 and len(got.faces_F3) == 0
    x, y, z = points.T  # written y-up, as glTF requires
    np.testing.assert_allclose(got.vertices_N3, np.stack([x, z, -y], 1), atol=1e-6)
    np.testing.assert_array_equal(got.colors_N3, colors)
    shipped = read_mesh(real_data / "scene_fused_pointcloud.ply")  # vertex-only binary PLY
    assert len(shipped.vertices_N3) == 185_819 and len(shipped.faces_F3) == 0
    assert shipped.colors_N3.std() > 0  # real colours, not the grey default


def _room(w: float, d: float, h: float, ceiling: bool) -> Mesh:
    """A w x d room, h tall, z up, as a scan sees it from inside: the floor faces up (+z),
    the four walls face in, the ceiling (when there) faces down. Two triangles per quad."""
    quads = [
        [(0, 0, 0), (w, 0, 0), (w, d, 0), (0, d, 0)],  # floor: normal +z
        [(0, 0, 0), (0, 0, h), (w, 0, h), (w, 0, 0)],  # wall y=0: +y
        [(0, d, 0), (w, d, 0), (w, d, h), (0, d, h)],  # wall y=d: -y
        [(0, 0, 0), (0, d, 0), (0, d, h), (0, 0, h)],  # wall x=0: +x
        [(w, 0, 0), (w, 0, h), (w, d, h), (w, d, 0)],  # wall x=w: -x
    ]
    if ceiling:
        quads.append([(0, 0, h), (0, d, h), (w, d, h), (w, 0, h)])  # ceiling: -z
    v = np.array(quads, np.float32).reshape(-1, 3)
    faces = np.array([[4 * q, 4 * q + 1, 4 * q + 2] for q in range(len(quads))]
                     + [[4 * q, 4 * q + 2, 4 * q + 3] for q in range(len(quads))])  # fmt: skip
    return Mesh(v, np.full((len(v), 3), 200, np.uint8), faces)


def _y_up(mesh: Mesh) -> Mesh:
    return mesh.transformed(T_YUP_ZUP)  # (x, y, z) -> (x, z, -y): the floor now faces +y


def test_floor_evidence_open_scan_and_closed_room():
    # open 4 x 3 x 2.5 room: the walls facing y (2 x 10 m2) outweigh the floor (12 m2) in flat
    # area, but they face each other and cancel in the vector area, which is the floor's alone
    room = _room(4, 3, 2.5, ceiling=False)
    np.testing.assert_allclose(flat_area_by_axis(room.vertices_N3, room.faces_F3), [15, 20, 12])
    evidence, measured = floor_evidence(room.vertices_N3, room.faces_F3)
    np.testing.assert_allclose(evidence, [0, 0, 12], atol=1e-9)
    assert measured.startswith("vector area")
    # closed 5 x 4 x 2.5 room: vector area 0; floor + ceiling 40 m2 vs walls 20 and 25
    closed = _room(5, 4, 2.5, ceiling=True)
    evidence, measured = floor_evidence(closed.vertices_N3, closed.faces_F3)
    np.testing.assert_allclose(evidence, [20, 25, 40])
    assert measured == "flat area by normal axis"
    on_side = _y_up(closed)
    np.testing.assert_allclose(floor_evidence(on_side.vertices_N3, on_side.faces_F3)[0],
                               [20, 40, 25], atol=1e-5)  # fmt: skip


def test_import_of_a_y_up_obj_with_up_z_warns_the_room_lies_on_its_side(tmp_path):
    room = _room(4, 3, 2.5, ceiling=False)
    src = write_mesh(tmp_path / "room_yup.obj", _y_up(room))
    for up in ("z", "auto"):  # OBJ does not say its up axis: auto is z
        imported = import_mesh(src, tmp_path / f"s_{up}", up=up)
        assert imported.up == "z"
        assert imported.warnings == (
            f"{src}: with z up its floor seems to face y (vector area (area-weighted face "
            "normals): x 0, y 12, z 0), so the room would lie on its side: pass --up y",
        )
    upright = import_mesh(src, tmp_path / "s_y", up="y")
    assert upright.warnings == ()
    np.testing.assert_allclose(read_ply(upright.path).vertices_N3, room.vertices_N3, atol=1e-6)
    z_up = import_mesh(write_mesh(tmp_path / "room.obj", room), tmp_path / "s_zup")
    assert z_up.warnings == ()  # the same room written z-up: no warning
    x_up = room.transformed(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]]))
    src = write_mesh(tmp_path / "room_xup.obj", x_up)
    (warning,) = import_mesh(src, tmp_path / "s_x").warnings  # no --up stands it upright
    assert "its floor seems to face x" in warning
    assert warning.endswith("rotate the file so its floor faces y or z")


def test_export_mesh_glb_round_trip_keeps_the_room_upright(tmp_path):
    from ross3d_data.synthetic.scenes import make_demo

    (scene_dir,) = make_demo(tmp_path / "demo", n_scenes=1, seed=0, n_frames=2)
    aligned = load_scene(scene_dir).mesh_aligned()
    runner = CliRunner()
    glb = tmp_path / "room.glb"
    assert runner.invoke(app, ["export-mesh", str(scene_dir), "-o", str(glb)]).exit_code == 0
    r = runner.invoke(app, ["import-mesh", str(glb), str(tmp_path / "s1")])  # default --up
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        f"note: {glb}: read as y up (glTF is y-up by specification); pass --up to override",
        f"wrote {scannet.mesh_path(tmp_path / 's1')}",
    ]
    got = read_ply(scannet.mesh_path(tmp_path / "s1"))
    np.testing.assert_allclose(got.vertices_N3, aligned.vertices_N3, atol=1e-5)  # z up again
    # the demo room is closed: floor + ceiling outweigh either pair of walls
    evidence, _ = floor_evidence(got.vertices_N3, got.faces_F3)
    assert np.argmax(evidence) == 2
    r = runner.invoke(app, ["import-mesh", str(glb), str(tmp_path / "s2"), "--up", "z"])
    assert r.exit_code == 0, r.output
    (warning,) = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: {glb}: with z up its floor seems to face y (flat area")
    assert warning.endswith("so the room would lie on its side: pass --up y")
