"""Mesh files in any common format: ScanNet's binary PLY by our fast reader, the rest by trimesh.

* :func:`read_mesh`: binary little-endian PLY in the layouts ``ply.read_ply`` knows (every
  ScanNet mesh; 26 ms vs trimesh's 31 ms for a ScanNet-size mesh, and errors that name the
  problem) is read by it; ASCII / big-endian PLY, PLY with other elements, OBJ, GLB/glTF, OFF
  and STL go through ``trimesh`` (multi-part scenes are merged into one mesh, polygons
  triangulated, texture colours sampled to the vertices). Either way the result is validated:
  at least one vertex, finite coordinates, triangle indices in range; vertices without colour
  are grey (128). Every failure is a ``SceneError`` naming the file.
* :func:`write_mesh`: ``.ply`` is written in ScanNet's layout (``ply.write_ply``), so any
  pipeline command reads it back; ``.obj`` and ``.glb`` (meshes) and ``.glb`` (point clouds)
  go through trimesh, for viewers (OFF and STL are read but not written: they drop colour).
* :func:`import_mesh` puts a mesh from another dataset into a scene folder as
  ``<scene_id>_vh_clean_2.ply`` (z up; ``up="y"`` rotates a y-up file such as glTF), so
  ``render-bev`` and ``build-shards`` use it like a ScanNet mesh.
* :func:`export_scene_geometry` writes a scene's aligned mesh, or its fused RGB-D points (what
  the BEV of a scene without a mesh is rendered from), for inspection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Mesh
from ross3d_data.scannet.ply import read_ply, write_ply

TRIMESH_READ = (".ply", ".obj", ".glb", ".gltf", ".off", ".stl")
MESH_WRITE = (".ply", ".obj", ".glb")  # formats that keep vertex colours
POINTS_WRITE = (".ply", ".glb")
GREY = 128
# rotation taking a y-up frame (glTF, many game/CAD exports) to z up: (x, y, z) -> (x, -z, y)
T_ZUP_YUP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], np.float64)


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


def write_mesh(path: str | Path, mesh: Mesh) -> Path:
    """Write ``mesh`` (faces) or a point cloud (no faces) by the file suffix (module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    allowed = MESH_WRITE if len(mesh.faces_F3) else POINTS_WRITE
    if suffix not in allowed:
        what = "mesh" if len(mesh.faces_F3) else "point cloud"
        raise ValueError(f"{path}: cannot write a {what} as {suffix!r} (use one of {allowed})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".ply":
        write_ply(path, mesh)
        return path
    import trimesh

    rgba = np.concatenate([mesh.colors_N3, np.full((len(mesh.colors_N3), 1), 255, np.uint8)], 1)
    if len(mesh.faces_F3):
        geometry = trimesh.Trimesh(mesh.vertices_N3, mesh.faces_F3, vertex_colors=rgba,
                                   process=False)  # fmt: skip
    else:
        geometry = trimesh.PointCloud(mesh.vertices_N3, colors=rgba)
    geometry.export(path)
    return path


def import_mesh(src: str | Path, scene_dir: str | Path, up: str = "z", overwrite: bool = False):
    """Write ``src`` as ``scene_dir/<scene_dir name>_vh_clean_2.ply`` (z up); returns the path.

    The mesh keeps its own frame (an ``axisAlignment`` in the scene's meta file still applies
    on top); ``up="y"`` maps a y-up file to z up first. Refuses to replace an existing mesh
    unless ``overwrite``."""
    from ross3d_data.scannet import files as scannet

    if up not in ("z", "y"):
        raise ValueError(f"up must be 'z' or 'y', got {up!r}")
    scene_dir = Path(scene_dir)
    out = scannet.mesh_path(scene_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: a mesh is already there (pass overwrite to replace it)")
    mesh = read_mesh(src)
    if not len(mesh.faces_F3):
        raise SceneError(Path(src), "has no faces: a point cloud cannot stand in for the scan mesh")
    if up == "y":
        mesh = mesh.transformed(T_ZUP_YUP)
    scene_dir.mkdir(parents=True, exist_ok=True)
    write_ply(out, mesh)
    return out


def export_scene_geometry(scene_dir: str | Path, out: str | Path, source: str = "mesh") -> Path:
    """The scene's aligned mesh (``source="mesh"``) or its fused RGB-D points in the aligned
    frame (``"fused"``, the BEV fusion's points) written to ``out`` by its suffix."""
    from ross3d_data.bev.fusion import fuse_scene_points
    from ross3d_data.bev.render import BevConfig
    from ross3d_data.datasets import load_scene

    scene = load_scene(Path(scene_dir))
    if source == "mesh":
        mesh = scene.mesh_aligned()
        if mesh is None:
            raise SceneError(Path(scene_dir), "scene has no mesh (try the fused RGB-D points)")
    elif source == "fused":
        points, colors = fuse_scene_points(scene, BevConfig())
        mesh = Mesh(points.astype(np.float32), colors.astype(np.uint8), np.zeros((0, 3), np.int64))
    else:
        raise ValueError(f"source must be 'mesh' or 'fused', got {source!r}")
    return write_mesh(out, mesh)
