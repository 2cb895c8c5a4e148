"""Mesh files in any common format: ScanNet's binary PLY by our fast reader, the rest by trimesh.

* ``read_mesh`` (``datasets.meshes``, re-used by every dataset reader): any supported file as a
  validated ``Mesh``.
* :func:`write_mesh`: ``.ply`` is written in ScanNet's layout (``ply.write_ply``), so any
  pipeline command reads it back; ``.obj`` and ``.glb`` (meshes) and ``.glb`` (point clouds)
  go through trimesh, for viewers (OFF and STL are read but not written: they drop colour).
  PLY and OBJ keep our z-up frame; GLB is written y-up, as the glTF specification requires
  (so glTF viewers show the room upright).
* :func:`import_mesh` puts a mesh from another dataset into a scene folder as
  ``<scene_id>_vh_clean_2.ply`` (z up), so ``render-bev`` and ``build-shards`` use it like a
  ScanNet mesh. The file's up axis comes from its format where the format fixes it (glTF:
  y up), else z (ScanNet's); either way a mesh whose floor then seems to face sideways (a
  room lying on its side, judged from its face normals) gets a warning naming the ``up``
  that would stand it upright.
* :func:`export_scene_geometry` writes a scene's aligned mesh, or its fused RGB-D points (what
  the BEV of a scene without a mesh is rendered from), for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Mesh
from ross3d_data.datasets.meshes import read_mesh
from ross3d_data.scannet.ply import write_ply

MESH_WRITE = (".ply", ".obj", ".glb")  # formats that keep vertex colours
POINTS_WRITE = (".ply", ".glb")
UP_AXES = ("auto", "z", "y")  # import_mesh's up: auto = the format's own, else z
Y_UP_FORMATS = (".glb", ".gltf")  # y up by specification (glTF 2.0, section 3.4)
# rotation taking a y-up frame (glTF, many game/CAD exports) to z up: (x, y, z) -> (x, -z, y)
T_ZUP_YUP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], np.float64)
# its inverse, z up to y up (glTF): (x, y, z) -> (x, z, -y)
T_YUP_ZUP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], np.float64)
FLAT_COS = np.cos(np.radians(30.0))  # a face within 30 degrees of facing along an axis
OPEN_SURFACE_FRACTION = 0.05  # vector area / area above which a mesh counts as an open scan
SIDEWAYS_MARGIN = 1.25  # another axis must look this much more like up to warn (a tie does not)


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

    if suffix in Y_UP_FORMATS:
        mesh = mesh.transformed(T_YUP_ZUP)

    rgba = np.concatenate([mesh.colors_N3, np.full((len(mesh.colors_N3), 1), 255, np.uint8)], 1)
    if len(mesh.faces_F3):
        geometry = trimesh.Trimesh(mesh.vertices_N3, mesh.faces_F3, vertex_colors=rgba,
                                   process=False)  # fmt: skip
    else:
        geometry = trimesh.PointCloud(mesh.vertices_N3, colors=rgba)
    geometry.export(path)
    return path


@dataclass(frozen=True)
class ImportedMesh:
    """What :func:`import_mesh` wrote: the scene mesh, the file's up axis it assumed and why
    (``up_source``), and warnings worth showing (the mesh may lie on its side)."""

    path: Path
    up: str
    up_source: str
    warnings: tuple[str, ...] = ()


def import_mesh(
    src: str | Path, scene_dir: str | Path, up: str = "auto", overwrite: bool = False
) -> ImportedMesh:
    """Write ``src`` as ``scene_dir/<scene_dir name>_vh_clean_2.ply`` (z up).

    The mesh keeps its own frame (an ``axisAlignment`` in the scene's meta file still applies
    on top); ``up="y"`` maps a y-up file to z up first, ``"auto"`` takes the up axis of the
    file's format (glTF: y) and z otherwise. A warning (``ImportedMesh.warnings``) says when
    the floor then seems to face sideways (``sideways_warning``). Refuses to replace an
    existing mesh unless ``overwrite``."""
    from ross3d_data.scannet import files as scannet

    if up not in UP_AXES:
        raise ValueError(f"up must be one of {', '.join(UP_AXES)}, got {up!r}")
    src, scene_dir = Path(src), Path(scene_dir)
    out = scannet.mesh_path(scene_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: a mesh is already there (pass overwrite to replace it)")
    mesh = read_mesh(src)
    if not len(mesh.faces_F3):
        raise SceneError(src, "has no faces: a point cloud cannot stand in for the scan mesh")
    up, up_source = _file_up_axis(src, up)
    warning = sideways_warning(src, mesh, up)
    if up == "y":
        mesh = mesh.transformed(T_ZUP_YUP)
    scene_dir.mkdir(parents=True, exist_ok=True)
    write_ply(out, mesh)
    return ImportedMesh(out, up, up_source, (warning,) if warning else ())


def _file_up_axis(src: Path, up: str) -> tuple[str, str]:
    """The up axis to assume for ``src`` and where it comes from."""
    if up != "auto":
        return up, "--up"
    if src.suffix.lower() in Y_UP_FORMATS:
        return "y", "glTF is y-up by specification"
    return "z", "ScanNet's convention: the format does not say"


def _cross_F3(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> np.ndarray:
    """Per face, the cross product of two edges: normal times twice the area."""
    v = vertices_N3.astype(np.float64)
    return np.cross(v[faces_F3[:, 1]] - v[faces_F3[:, 0]], v[faces_F3[:, 2]] - v[faces_F3[:, 0]])


def flat_area_by_axis(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> np.ndarray:
    """(3,) area (file units squared) of the faces whose normal lies within 30 degrees of
    the x, y and z axis (either sign): floors, ceilings and table tops for the up axis, walls
    for the other two."""
    cross_F3 = _cross_F3(vertices_N3, faces_F3)
    double_area_F = np.linalg.norm(cross_F3, axis=1)
    keep = double_area_F > 0  # degenerate faces have no normal
    normal_F3 = cross_F3[keep] / double_area_F[keep, None]
    area_F = double_area_F[keep] / 2
    return np.array([area_F[np.abs(normal_F3[:, a]) >= FLAT_COS].sum() for a in range(3)])


def floor_evidence(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> tuple[np.ndarray, str]:
    """(3,) how strongly each axis looks like the room's up axis, and what was measured.

    A scan is an open surface whose faces look into the room: floors and table tops face up
    while opposite walls cancel, so the vector area (sum of area times normal) points up.
    A closed mesh has zero vector area; then the flat area across each axis
    (``flat_area_by_axis``) decides: floor, ceiling and tops outweigh the walls of any one
    direction in most rooms."""
    cross_F3 = _cross_F3(vertices_N3, faces_F3)
    vector_area_3 = np.abs(cross_F3.sum(0)) / 2
    total_area = np.linalg.norm(cross_F3, axis=1).sum() / 2
    if vector_area_3.max() >= OPEN_SURFACE_FRACTION * total_area:
        return vector_area_3, "vector area (area-weighted face normals)"
    return flat_area_by_axis(vertices_N3, faces_F3), "flat area by normal axis"


def sideways_warning(src: Path, mesh: Mesh, up: str) -> str | None:
    """A warning when ``floor_evidence`` clearly (by SIDEWAYS_MARGIN) favours another axis
    than the assumed up axis: the room would lie on its side. Names the ``--up`` that stands
    it upright, when there is one."""
    evidence_3, measured = floor_evidence(mesh.vertices_N3, mesh.faces_F3)
    floor = "xyz"[int(np.argmax(evidence_3))]
    if floor == up or evidence_3.max() <= SIDEWAYS_MARGIN * evidence_3["xyz".index(up)]:
        return None
    values = ", ".join(f"{a} {evidence_3[i]:.3g}" for i, a in enumerate("xyz"))
    fix = f"pass --up {floor}" if floor in UP_AXES else "rotate the file so its floor faces y or z"
    return (
        f"{src}: with {up} up its floor seems to face {floor} ({measured}: {values}), "
        f"so the room would lie on its side: {fix}"
    )


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
