"""The scene every dataset reader returns: frames, poses, intrinsics, an optional mesh, boxes.

Frames: ``world`` is the dataset's raw scan frame; ``aligned = T_aligned_world @ world`` (z up,
metres) is the frame everything downstream uses. ``Frame.T_world_cam`` stays raw;
``Scene.T_aligned_cam`` aligns it. See docs/contracts.md section 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Frame, Intrinsics, Mesh, SceneObject, pose_is_valid


class FrameSource(Protocol):
    """Where a scene's frames come from (a ``.sens`` stream, a posed folder, a video, ...).

    Frame ids are stable integer indices; ``pose`` is the raw camera-to-world 4x4 (OpenCV
    camera axes: x right, y down, z forward), cheap to read without decoding images.
    """

    path: Path

    def frame_ids(self) -> list[int]: ...
    def skipped_frame_ids(self) -> list[int]: ...
    def load_frame(self, frame_id: int) -> Frame: ...
    def pose(self, frame_id: int) -> np.ndarray: ...


@runtime_checkable
class PerFrameIntrinsics(Protocol):
    """A frame source whose intrinsics differ per frame (e.g. frames rotated upright)."""

    def intrinsics(self, frame_id: int) -> tuple[Intrinsics, Intrinsics]: ...


class Scene:
    """A scan: alignment, intrinsics, objects, an optional mesh and a frame source."""

    def __init__(
        self,
        scene_id: str,
        root: Path,
        T_aligned_world: np.ndarray,
        color_intrinsics: Intrinsics | None,  # None: mesh only, no usable frames
        depth_intrinsics: Intrinsics | None,
        objects: list[SceneObject],
        mesh_file: Path | None,
        frames: FrameSource | None,
        read_mesh: Callable[[Path], Mesh] | None = None,
        dataset: str = "scannet",
    ) -> None:
        """``read_mesh(mesh_file)`` returns the mesh in the raw world frame (required when
        ``mesh_file`` is set); ``dataset`` names the reader (``scannet``, ``arkitscenes``...)."""
        if mesh_file is not None and read_mesh is None:
            raise ValueError("a scene with a mesh file needs a read_mesh function")
        self.scene_id = scene_id
        self.root = root
        self.T_aligned_world = T_aligned_world
        self.color_intrinsics = color_intrinsics
        self.depth_intrinsics = depth_intrinsics
        self.objects = objects
        self.mesh_file = mesh_file
        self.frame_source = frames
        self.dataset = dataset
        self._read_mesh = read_mesh
        self._mesh: Mesh | None = None

    def __repr__(self) -> str:
        src = self.frame_source.path if self.frame_source else None
        return f"Scene({self.scene_id!r}, root={self.root}, frames={src}, mesh={self.mesh_file})"

    def mesh_aligned(self) -> Mesh | None:
        """The scan mesh in the aligned frame (read once, cached); None without a mesh."""
        if self.mesh_file is None:
            return None
        if self._mesh is None:
            self._mesh = self._read_mesh(self.mesh_file).transformed(self.T_aligned_world)
        return self._mesh

    def frame_ids(self) -> list[int]:
        """Valid frames (finite poses), sorted; [] without frames."""
        return self.frame_source.frame_ids() if self.frame_source else []

    def skipped_frame_ids(self) -> list[int]:
        """Frames dropped because their pose is missing or has -inf/nan."""
        return self.frame_source.skipped_frame_ids() if self.frame_source else []

    def _source(self) -> FrameSource:
        if self.frame_source is None:
            raise SceneError(self.root, "scene has no frames, only a mesh")
        return self.frame_source

    def load_frame(self, frame_id: int) -> Frame:
        return self._source().load_frame(frame_id)

    def frame_intrinsics(self, frame_id: int) -> tuple[Intrinsics, Intrinsics]:
        """(colour, depth) intrinsics of one frame: the source's own where they vary per frame,
        else the scene's."""
        src = self._source()
        if isinstance(src, PerFrameIntrinsics):
            return src.intrinsics(frame_id)
        if self.color_intrinsics is None or self.depth_intrinsics is None:
            raise SceneError(self.root, "scene has no colour/depth intrinsics")
        return self.color_intrinsics, self.depth_intrinsics

    def T_aligned_cam(self, frame_id: int) -> np.ndarray:
        """Aligned camera-to-world 4x4 (float64) of a frame (reads only the pose)."""
        T = self._source().pose(frame_id)
        if not pose_is_valid(T):
            raise SceneError(self.root, f"frame {frame_id} has an invalid (-inf/nan) pose")
        return self.T_aligned_world @ T
