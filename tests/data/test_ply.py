import struct

import numpy as np
import pytest
from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Mesh
from ross3d_data.scannet.ply import read_ply, write_ply


def _mesh(n=50, f=40, seed=0):
    rng = np.random.default_rng(seed)
    return Mesh(
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.integers(0, 256, (n, 3)).astype(np.uint8),
        rng.integers(0, n, (f, 3)),
    )


def test_write_read_roundtrip_is_exact(tmp_path):
    m = _mesh()
    write_ply(tmp_path / "m.ply", m)
    r = read_ply(tmp_path / "m.ply")
    np.testing.assert_array_equal(r.vertices_N3, m.vertices_N3)
    np.testing.assert_array_equal(r.colors_N3, m.colors_N3)
    np.testing.assert_array_equal(r.faces_F3, m.faces_F3)
    assert r.vertices_N3.dtype == np.float32 and r.colors_N3.dtype == np.uint8


def test_file_is_standard_ply_readable_by_open3d(tmp_path):
    from ross3d_data.synthetic.raycast import import_open3d

    o3d = import_open3d()
    m = _mesh()
    write_ply(tmp_path / "m.ply", m)
    t = o3d.io.read_triangle_mesh(str(tmp_path / "m.ply"))
    np.testing.assert_allclose(np.asarray(t.vertices), m.vertices_N3, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(t.triangles), m.faces_F3)
    np.testing.assert_allclose(np.asarray(t.vertex_colors) * 255, m.colors_N3, atol=1e-3)


def _header(n_v, n_f, extra_vertex_props="", face_type="uchar uint"):
    return (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n_v}\nproperty float x\nproperty float y\nproperty float z\n"
        f"{extra_vertex_props}"
        f"element face {n_f}\nproperty list {face_type} vertex_indices\nend_header\n"
    ).encode()


def test_quads_are_fan_triangulated_and_missing_colours_grey(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], "<f4")
    body = verts.tobytes()
    body += struct.pack("<B4I", 4, 0, 1, 2, 3) + struct.pack("<B3I", 3, 1, 4, 2)
    (tmp_path / "q.ply").write_bytes(_header(5, 2) + body)
    m = read_ply(tmp_path / "q.ply")
    np.testing.assert_array_equal(m.faces_F3, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    assert (m.colors_N3 == 128).all()


def test_point_cloud_without_faces(tmp_path):
    head = (
        b"ply\nformat binary_little_endian 1.0\ncomment cloud\nelement vertex 2\n"
        b"property float x\nproperty float y\nproperty float z\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    body = struct.pack("<3f3B", 1, 2, 3, 10, 20, 30) + struct.pack("<3f3B", 4, 5, 6, 1, 2, 3)
    (tmp_path / "c.ply").write_bytes(head + body)
    m = read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(m.vertices_N3, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(m.colors_N3, [[10, 20, 30], [1, 2, 3]])
    assert m.faces_F3.shape == (0, 3)


@pytest.mark.parametrize("cut", [100, -5])  # inside the vertices / inside the faces
def test_truncated_ply_names_file(tmp_path, cut):
    write_ply(tmp_path / "scene_vh_clean_2.ply", _mesh())
    data = (tmp_path / "scene_vh_clean_2.ply").read_bytes()
    head = data.index(b"end_header") + 11
    (tmp_path / "scene_vh_clean_2.ply").write_bytes(data[: head + cut] if cut > 0 else data[:cut])
    with pytest.raises(SceneError, match=r"scene_vh_clean_2\.ply: truncated"):
        read_ply(tmp_path / "scene_vh_clean_2.ply")


def test_corrupt_ply_errors_name_file(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SceneError, match=r"bad\.ply: not a PLY"):
        read_ply(bad)
    bad.write_bytes(_header(1, 0).replace(b"binary_little_endian", b"ascii"))
    with pytest.raises(SceneError, match="unsupported PLY format 'ascii'"):
        read_ply(bad)
    body = np.zeros(3, "<f4").tobytes() + struct.pack("<B3I", 3, 0, 0, 7)
    bad.write_bytes(_header(1, 1) + body)
    with pytest.raises(SceneError, match=r"bad\.ply: face indices outside"):
        read_ply(bad)
    with pytest.raises(SceneError, match=r"missing\.ply: mesh file not found"):
        read_ply(tmp_path / "missing.ply")


def test_real_fused_point_cloud(real_data):
    m = read_ply(real_data / "scene_fused_pointcloud.ply")
    assert m.vertices_N3.shape == (185819, 3) and m.faces_F3.shape == (0, 3)
    assert np.isfinite(m.vertices_N3).all() and m.colors_N3.std() > 10
