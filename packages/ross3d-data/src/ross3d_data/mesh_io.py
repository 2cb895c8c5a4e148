"""Mesh files in any common format: ScanNet's binary PLY by our fast reader, the rest by trimesh.

* ``read_mesh`` (``datasets.meshes``, re-used by every dataset reader): any supported file as a
  validated ``Mesh``.
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
from ross3d_data.datasets.meshes import read_mesh
from ross3d_data.scannet.ply import write_ply

MESH_WRITE = (".ply", ".obj", ".glb")  # formats that keep vertex colours
POINTS_WRITE = (".ply", ".glb")
# rotation taking a y-up frame (glTF, many game/CAD exports) to z up: (x, y, z) -> (x, -z, y)
T_ZUP_YUP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], np.float64)


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


def export_scene_geometry(
    scene_dir: str | Path, out: str | Path, source: str = "mesh", fmt: str | None = None
) -> Path:
    """The scene's aligned mesh (``source="mesh"``) or its fused RGB-D points in the aligned
    frame (``"fused"``, the BEV fusion's points) written to ``out`` by its suffix. ``fmt``: a
    ``datasets.FORMATS`` name to read the folder as (None: detected)."""
    from ross3d_data.bev.fusion import fuse_scene_points
    from ross3d_data.bev.grid import BevConfig
    from ross3d_data.datasets import load_scene

    scene = load_scene(Path(scene_dir), fmt=fmt)
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
