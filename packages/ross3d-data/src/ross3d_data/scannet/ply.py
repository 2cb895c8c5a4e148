"""Binary little-endian PLY meshes as ScanNet writes them (``<id>_vh_clean_2.ply``).

Vertices carry ``x y z`` floats and ``red green blue [alpha]`` uchars; faces are
``list uchar int vertex_indices``. All-triangle face lists (every ScanNet mesh) are read with one
structured ``np.frombuffer``; other polygons are fan-triangulated. A vertex-only PLY (a point
cloud) gives an empty face array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Mesh

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _parse_header(path: Path, data: bytes) -> tuple[int, list[dict]]:
    """Return (byte offset of the body, elements [{name, count, props}])."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise SceneError(path, "not a PLY file (missing 'ply' magic or 'end_header')")
    body = data.index(b"\n", end) + 1
    elements: list[dict] = []
    fmt = None
    for raw in data[:end].decode("ascii", errors="replace").splitlines():
        tok = raw.split()
        if not tok or tok[0] in ("ply", "comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append({"name": tok[1], "count": int(tok[2]), "props": []})
        elif tok[0] == "property" and elements:
            elements[-1]["props"].append(tok[1:])
    if fmt != "binary_little_endian":
        raise SceneError(path, f"unsupported PLY format {fmt!r} (need binary_little_endian)")
    return body, elements


def _ply_dtype(path: Path, prop: list[str]) -> str:
    kind = prop[-2] if prop[0] != "list" else prop[2]
    if kind not in _PLY_TYPES:
        raise SceneError(path, f"unknown PLY property type {kind!r}")
    return "<" + _PLY_TYPES[kind]


def _read_vertices(path: Path, data: bytes, offset: int, el: dict) -> tuple[np.ndarray, int]:
    if any(p[0] == "list" for p in el["props"]):
        raise SceneError(path, "list properties on vertices are not supported")
    dtype = np.dtype([(p[-1], _ply_dtype(path, p)) for p in el["props"]])
    need = dtype.itemsize * el["count"]
    if len(data) < offset + need:
        raise SceneError(path, f"truncated: {el['count']} vertices need {need} bytes")
    return np.frombuffer(data, dtype, el["count"], offset), offset + need


def _read_faces(path: Path, data: bytes, offset: int, el: dict) -> np.ndarray:
    """Faces as int64 (F, 3); polygons with more than 3 corners are fan-triangulated."""
    if len(el["props"]) != 1 or el["props"][0][0] != "list":
        raise SceneError(path, "face properties besides one vertex list are not supported")
    cnt_t, idx_t = (_PLY_TYPES[t] for t in el["props"][0][1:3])
    n = el["count"]
    tri = np.dtype([("n", "<" + cnt_t), ("i", "<" + idx_t, 3)])
    if len(data) >= offset + tri.itemsize * n:
        faces = np.frombuffer(data, tri, n, offset)
        if n == 0 or bool(np.all(faces["n"] == 3)):
            return faces["i"].astype(np.int64)
    return _read_polygons(path, data, offset, n, np.dtype("<" + cnt_t), np.dtype("<" + idx_t))


def _read_polygons(path: Path, data: bytes, offset: int, n: int, cnt_t, idx_t) -> np.ndarray:
    out: list[list[int]] = []
    for f in range(n):
        if len(data) < offset + cnt_t.itemsize:
            raise SceneError(path, f"truncated in face {f} of {n}")
        k = int(np.frombuffer(data, cnt_t, 1, offset)[0])
        offset += cnt_t.itemsize
        if len(data) < offset + k * idx_t.itemsize:
            raise SceneError(path, f"truncated in face {f} of {n}")
        idx = np.frombuffer(data, idx_t, k, offset).tolist()
        offset += k * idx_t.itemsize
        out.extend([idx[0], idx[j], idx[j + 1]] for j in range(1, k - 1))
    return np.asarray(out, np.int64).reshape(-1, 3)


def read_ply(path: Path) -> Mesh:
    """Read a binary PLY mesh (or point cloud) in the file's own frame.

    Raises SceneError naming the file when it is missing, truncated, lacks x/y/z, or has face
    indices outside the vertex range. Colours default to grey (128) when absent.
    """
    path = Path(path)
    if not path.is_file():
        raise SceneError(path, "mesh file not found")
    data = path.read_bytes()
    offset, elements = _parse_header(path, data)
    verts, faces = None, np.zeros((0, 3), np.int64)
    for el in elements:
        if el["name"] == "vertex":
            verts, offset = _read_vertices(path, data, offset, el)
        elif el["name"] == "face":
            faces = _read_faces(path, data, offset, el)
            break
        else:
            raise SceneError(path, f"unsupported PLY element {el['name']!r} before faces")
    if verts is None or not {"x", "y", "z"} <= set(verts.dtype.names):
        raise SceneError(path, "PLY has no vertex element with x, y, z")
    xyz = np.stack([verts["x"], verts["y"], verts["z"]], 1).astype(np.float32)
    if {"red", "green", "blue"} <= set(verts.dtype.names):
        rgb = np.stack([verts["red"], verts["green"], verts["blue"]], 1).astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), 128, np.uint8)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(xyz)):
        raise SceneError(path, f"face indices outside [0, {len(xyz)}) (corrupt faces)")
    return Mesh(vertices_N3=xyz, colors_N3=rgb, faces_F3=faces)


def write_ply(path: Path, mesh: Mesh) -> None:
    """Write ``mesh`` in ScanNet's layout (xyz float, rgba uchar, uchar+int triangle lists)."""
    n, f = len(mesh.vertices_N3), len(mesh.faces_F3)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {f}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vdt = np.dtype([("xyz", "<f4", 3), ("rgba", "u1", 4)])
    v = np.empty(n, vdt)
    v["xyz"] = mesh.vertices_N3
    v["rgba"][:, :3] = mesh.colors_N3
    v["rgba"][:, 3] = 255
    fdt = np.dtype([("n", "u1"), ("i", "<i4", 3)])
    fc = np.empty(f, fdt)
    fc["n"] = 3
    fc["i"] = mesh.faces_F3
    Path(path).write_bytes(header.encode("ascii") + v.tobytes() + fc.tobytes())
