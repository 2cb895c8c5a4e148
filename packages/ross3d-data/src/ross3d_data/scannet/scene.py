"""A ScanNet scan as a ``Scene``: frames from an exported posed folder or the ``.sens`` stream,
the axis alignment and objects from the side files, the ``_vh_clean_2.ply`` mesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Frame, Intrinsics, pose_is_valid
from ross3d_data.core.scene import FrameSource, Scene
from ross3d_data.scannet import files as scannet
from ross3d_data.scannet import posed, sens
from ross3d_data.scannet.ply import read_ply

__all__ = ["PosedSource", "SensSource", "is_scene_dir", "load_scene"]


class PosedSource:
    """An exported posed-image folder (frame ids = file indices)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._valid, self._invalid = posed.valid_frame_ids(path)

    def frame_ids(self) -> list[int]:
        return list(self._valid)

    def skipped_frame_ids(self) -> list[int]:
        return list(self._invalid)

    def load_frame(self, frame_id: int) -> Frame:
        return posed.read_frame(self.path, frame_id)

    def pose(self, frame_id: int) -> np.ndarray:
        return posed.read_matrix_44(self.path / "pose" / f"{frame_id}.txt")

    def first_intrinsics(self) -> tuple[Intrinsics, Intrinsics]:
        if not self._valid:
            raise SceneError(self.path / "pose", "no frame with a finite pose")
        first = self._valid[0]
        return (posed.read_intrinsics(self.path, "color", first),
                posed.read_intrinsics(self.path, "depth", first))  # fmt: skip


class SensSource:
    """A ``.sens`` stream, indexed once (frame heads only) for random access."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header = sens.read_sens_header(path)
        self._offsets: dict[int, int] | None = None
        self._poses: dict[int, np.ndarray] = {}
        self._invalid: list[int] = []

    def _index(self) -> dict[int, int]:
        """Valid frame id -> byte offset; reads only the 96-byte frame heads, once."""
        if self._offsets is None:
            offsets, poses, invalid = {}, {}, []
            for rec in sens.iter_sens(self.path, with_images=False):
                if pose_is_valid(rec.T_world_cam):
                    offsets[rec.frame_id], poses[rec.frame_id] = rec.offset, rec.T_world_cam
                else:
                    invalid.append(rec.frame_id)
            self._offsets, self._poses, self._invalid = offsets, poses, invalid
        return self._offsets

    def frame_ids(self) -> list[int]:
        return sorted(self._index())

    def skipped_frame_ids(self) -> list[int]:
        self._index()
        return list(self._invalid)

    def load_frame(self, frame_id: int) -> Frame:
        offsets = self._index()
        if frame_id not in offsets:
            raise SceneError(self.path, f"frame {frame_id} is not a valid frame of this stream")
        rec = sens.read_record_at(self.path, offsets[frame_id], frame_id)
        return sens.decode_record(self.path, self.header, rec)

    def pose(self, frame_id: int) -> np.ndarray:
        if frame_id not in self._index():
            raise SceneError(self.path, f"frame {frame_id} is not a valid frame of this stream")
        return self._poses[frame_id].copy()


def _posed_dir(scene_dir: Path, frames_dir: Path | None) -> Path | None:
    """``frames_dir`` itself, ``frames_dir/<scene_id>``, or ``scene_dir`` when it is posed."""
    if frames_dir is not None:
        for cand in (frames_dir, frames_dir / scene_dir.name):
            if posed.is_posed_dir(cand):
                return cand
        raise SceneError(
            frames_dir, f"no posed-image folder for {scene_dir.name} (need pose/, color/)"
        )
    return scene_dir if posed.is_posed_dir(scene_dir) else None


def _frame_source(scene_dir: Path, frames_dir: Path | None) -> FrameSource | None:
    pdir = _posed_dir(scene_dir, frames_dir)
    if pdir is not None:
        return PosedSource(pdir)
    if scannet.sens_path(scene_dir).is_file():
        return SensSource(scannet.sens_path(scene_dir))
    return None


def _intrinsics(
    src: FrameSource | None, meta: dict[str, str], meta_file: Path, has_mesh: bool
) -> tuple[Intrinsics | None, Intrinsics | None]:
    """Colour and depth intrinsics; (None, None) for a mesh-only scene without them (nothing
    but frames needs intrinsics, and such a scene has no usable frame)."""
    if isinstance(src, PosedSource) and src.frame_ids():
        return src.first_intrinsics()
    if isinstance(src, SensSource):
        return src.header.color_intrinsics, src.header.depth_intrinsics
    color = scannet.meta_intrinsics(meta, "color", meta_file)
    depth = scannet.meta_intrinsics(meta, "depth", meta_file)
    if (color is None or depth is None) and not has_mesh:
        where = src.path if src is not None else meta_file
        raise SceneError(where, "no usable frames and no colour/depth intrinsics in the meta file")
    return (color, depth) if color is not None and depth is not None else (None, None)


def load_scene(scene_dir: Path, frames_dir: Path | None = None) -> Scene:
    """Open a raw ScanNet scan folder and/or an exported posed-image folder.

    Frames come from the posed folder (``scene_dir`` itself, or ``frames_dir`` /
    ``frames_dir/<scene_id>``) when present, else from ``<id>.sens``. Objects need the mesh,
    ``<id>.aggregation.json`` and the segs file (``[]`` otherwise). Raises SceneError naming the
    offending file.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise SceneError(scene_dir, "scene directory not found")
    meta_file = scannet.meta_path(scene_dir)
    meta = scannet.read_meta(meta_file) if meta_file.is_file() else {}
    T_aligned_world = scannet.axis_alignment(meta, meta_file)
    mesh_file = scannet.mesh_path(scene_dir) if scannet.mesh_path(scene_dir).is_file() else None
    src = _frame_source(scene_dir, Path(frames_dir) if frames_dir is not None else None)
    if src is None and mesh_file is None:
        raise SceneError(scene_dir, "no mesh, no .sens and no posed-image folder: not a scene")
    color, depth = _intrinsics(src, meta, meta_file, mesh_file is not None)
    scene = Scene(
        scene_dir.name, scene_dir, T_aligned_world, color, depth, [], mesh_file, src, read_ply
    )
    agg, segs = scannet.aggregation_path(scene_dir), scannet.segs_path(scene_dir)
    if mesh_file is not None and agg.is_file() and segs.is_file():
        mesh = scene.mesh_aligned()
        scene.objects = scannet.read_objects(agg, segs, mesh.vertices_N3)
    return scene


def is_scene_dir(path: Path) -> bool:
    """A scan folder (mesh or .sens named after it) or a posed-image folder."""
    return (
        scannet.mesh_path(path).is_file()
        or scannet.sens_path(path).is_file()
        or posed.is_posed_dir(path)
    )
