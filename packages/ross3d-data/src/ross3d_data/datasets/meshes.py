"""Mesh files of any dataset as a validated ``Mesh``: binary PLY by ScanNet's fast reader, the
rest (ASCII or big-endian PLY, OBJ with textures, GLB/glTF, OFF, STL) by trimesh.

Binary little-endian PLY in the layouts ``scannet.ply.read_ply`` knows (every ScanNet mesh; 26 ms
vs trimesh's 31 ms for a ScanNet-size mesh, and errors that name the problem) is read by it;
everything else goes through ``trimesh`` (multi-part scenes are merged into one mesh, polygons
triangulated, texture colours sampled to the vertices). Either way the result is validated: at
least one vertex, finite coordinates, triangle indices in range; vertices without colour are grey
(128). Every failure is a ``SceneError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Mesh
from ross3d_data.scannet.ply import read_ply

TRIMESH_READ = (".ply", ".obj", ".glb", ".gltf", ".off", ".stl")
GREY = 128


def _ply_format(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(4096).decode("ascii", errors="replace")
    for line in head.splitlines():
        if line.startswith("format "):
            return line.split()[1]
    return None


def read_mesh(path: str | Path) -> Mesh:
    """A validated mesh (or point cloud: no faces) from any supported file (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(path, "mesh file not found")
    suffix = path.suffix.lower()
    if suffix not in TRIMESH_READ:
        raise SceneError(path, f"unsupported mesh format {suffix!r} (supported: {TRIMESH_READ})")
    if suffix == ".ply" and _ply_format(path) == "binary_little_endian":
        try:
            return _validated(path, read_ply(path))
        except SceneError as err:
            if "unsupported" not in err.why and "not supported" not in err.why:
                raise  # a corrupt ScanNet-style file: our message names the problem
    return _validated(path, _read_with_trimesh(path))


def _read_with_trimesh(path: Path) -> Mesh:
    import trimesh

    try:
        loaded = trimesh.load(path, process=False)
    except Exception as err:  # trimesh raises many exception types for a bad file
        raise SceneError(path, f"trimesh cannot read it: {type(err).__name__}: {err}") from err
    if isinstance(loaded, trimesh.Scene):  # glTF and multi-object files: merge the parts
        parts = loaded.dump()
        meshes = [g for g in parts if isinstance(g, trimesh.Trimesh)]
        clouds = [g for g in parts if isinstance(g, trimesh.PointCloud)]
        if not meshes and not clouds:
            raise SceneError(path, "the file holds no triangle mesh and no point cloud")
        loaded = trimesh.util.concatenate(meshes) if meshes else _merge_clouds(clouds)
    if isinstance(loaded, trimesh.PointCloud):
        return Mesh(np.asarray(loaded.vertices, np.float32),
                    _rgb(loaded.colors, len(loaded.vertices)), np.zeros((0, 3), np.int64))  # fmt: skip
    if not isinstance(loaded, trimesh.Trimesh):
        raise SceneError(path, f"not a mesh or point cloud ({type(loaded).__name__})")
    return Mesh(np.asarray(loaded.vertices, np.float32), _vertex_colors(loaded),
                np.asarray(loaded.faces, np.int64).reshape(-1, 3))  # fmt: skip


def _merge_clouds(clouds):
    import trimesh

    colors = [_rgb(c.colors, len(c.vertices)) for c in clouds]
    return trimesh.PointCloud(np.concatenate([c.vertices for c in clouds]), np.concatenate(colors))


def _vertex_colors(mesh) -> np.ndarray:
    """uint8 RGB per vertex: vertex colours, face colours or texture sampled at the UVs."""
    visual = mesh.visual
    n = len(mesh.vertices)
    if visual is None or visual.kind is None:
        return np.full((n, 3), GREY, np.uint8)
    if visual.kind == "texture":
        try:
            visual = visual.to_color()
        except Exception:  # missing or broken texture image: keep the geometry, grey
            return np.full((n, 3), GREY, np.uint8)
    return _rgb(visual.vertex_colors, n)


def _rgb(colors, n: int) -> np.ndarray:
    colors = np.asarray(colors) if colors is not None else np.zeros((0, 3))
    if colors.ndim != 2 or len(colors) != n or colors.shape[1] < 3:
        return np.full((n, 3), GREY, np.uint8)
    return colors[:, :3].astype(np.uint8)


def _validated(path: Path, mesh: Mesh) -> Mesh:
    v, f = mesh.vertices_N3, mesh.faces_F3
    if len(v) == 0:
        raise SceneError(path, "mesh has no vertices")
    if not np.isfinite(v).all():
        bad = int((~np.isfinite(v).all(axis=1)).sum())
        raise SceneError(path, f"{bad} of {len(v)} vertices have non-finite coordinates")
    if f.ndim != 2 or (len(f) and f.shape[1] != 3):
        raise SceneError(path, f"faces must be triangles, got shape {f.shape}")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise SceneError(path, f"face indices outside [0, {len(v)})")
    return mesh
