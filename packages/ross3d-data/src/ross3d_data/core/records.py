"""Plain records shared by the scene readers (re-exported by ``ross3d_data.scannet.scene``).

They live apart from ``scene.py`` so that the thin file readers (ply, sens, posed, scannet) can
return them without importing the scene assembly code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @property
    def K_33(self) -> np.ndarray:
        """float64 3x3 camera matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int) -> Intrinsics:
        """From a 3x3 or 4x4 camera matrix (as ScanNet's ``intrinsic_*.txt``)."""
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)

    def matrix_44(self) -> np.ndarray:
        """4x4 form written by ScanNet's exporter (K in the top-left, 1 on the diagonal)."""
        M = np.eye(4)
        M[:3, :3] = self.K_33
        return M


@dataclass(frozen=True)
class Mesh:
    """Triangle mesh in the frame named by whoever returns it (metres)."""

    vertices_N3: np.ndarray  # float32
    colors_N3: np.ndarray  # uint8 RGB
    faces_F3: np.ndarray  # int vertex indices

    def transformed(self, T_new_old: np.ndarray) -> Mesh:
        """This mesh with vertices mapped by the 4x4 ``T_new_old``."""
        v = self.vertices_N3.astype(np.float64) @ T_new_old[:3, :3].T + T_new_old[:3, 3]
        return Mesh(v.astype(np.float32), self.colors_N3, self.faces_F3)


@dataclass(frozen=True)
class SceneObject:
    """An annotated object: ScanNet ``objectId``, label and aligned-frame box."""

    object_id: int
    label: str
    box_6: np.ndarray  # float64 [cx, cy, cz, dx, dy, dz], aligned frame


@dataclass(frozen=True)
class Frame:
    """One RGB-D frame with its raw (not aligned) camera-to-world pose."""

    frame_id: int
    color_HW3: np.ndarray  # uint8 RGB at colour intrinsics' size
    depth_mm_HW: np.ndarray  # uint16 millimetres, 0 = invalid
    T_world_cam: np.ndarray  # float64 4x4


def pose_is_valid(T: np.ndarray) -> bool:
    """ScanNet marks lost tracking with -inf (sometimes nan) poses."""
    return bool(np.all(np.isfinite(T)))
