"""Pinhole colour + depth rendering of a mesh with open3d's CPU ``RaycastingScene``.

open3d is imported lazily: ``import open3d`` needs the system libraries libusb-1.0-0, libgl1 and
libegl1, and only rendering needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ross3d_data.core.records import Intrinsics, Mesh

APT_PACKAGES = "libusb-1.0-0 libgl1 libegl1"


def import_open3d() -> Any:
    """``open3d`` or an ImportError that says which system packages are missing."""
    try:
        import open3d
    except ImportError as e:  # usually a missing shared library, not a missing wheel
        raise ImportError(
            f"open3d could not be imported ({e}). It needs the system libraries "
            f"{APT_PACKAGES}: sudo apt-get install -y {APT_PACKAGES}"
        ) from e
    return open3d


class MeshRaycaster:
    """A mesh loaded once into a ``RaycastingScene``; render any number of views.

    Vertices are in the frame the poses passed to :meth:`render` map cameras into.
    """

    def __init__(self, mesh: Mesh) -> None:
        o3d = import_open3d()
        self._o3d = o3d
        self.mesh = mesh
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(mesh.vertices_N3, np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(mesh.faces_F3, np.uint32)),
        )
        self._faces = np.asarray(mesh.faces_F3, np.int64)
        self._colors = mesh.colors_N3.astype(np.float32)
        self._dirs_key: Intrinsics | None = None
        self._dirs = np.zeros((0, 3), np.float32)

    def _dirs_cam(self, K: Intrinsics) -> np.ndarray:
        """(H*W, 3) pixel-centre ray directions in camera axes, z component 1 (cached per K)."""
        if self._dirs_key != K:
            u, v = np.meshgrid(np.arange(K.width, dtype=np.float32) + 0.5,
                               np.arange(K.height, dtype=np.float32) + 0.5)  # fmt: skip
            d = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], -1)
            self._dirs, self._dirs_key = d.reshape(-1, 3).astype(np.float32), K
        return self._dirs

    def cast(self, K: Intrinsics, T_world_cam: np.ndarray) -> dict[str, np.ndarray]:
        """Hits of one ray per pixel centre: ``depth_HW`` (camera z, metres; inf = miss),
        ``prim_HW`` (triangle id) and ``uv_HW2`` (barycentrics of vertices 1 and 2)."""
        # camera-frame directions have z = 1, so the hit distance t IS the depth along z
        dirs = self._dirs_cam(K) @ T_world_cam[:3, :3].T.astype(np.float32)
        rays = np.empty((len(dirs), 6), np.float32)
        rays[:, :3] = T_world_cam[:3, 3]
        rays[:, 3:] = dirs
        hit = self.scene.cast_rays(self._o3d.core.Tensor(rays))
        shape = (K.height, K.width)
        return {
            "depth_HW": hit["t_hit"].numpy().reshape(shape),
            "prim_HW": hit["primitive_ids"].numpy().reshape(shape),
            "uv_HW2": hit["primitive_uvs"].numpy().reshape(*shape, 2),
        }

    def render(
        self, K: Intrinsics, T_world_cam: np.ndarray, background: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 RGB HxWx3, uint16 depth mm HxW) from one cast.

        Colour = vertex colours of the hit triangle interpolated barycentrically; depth = camera
        z in millimetres, 0 where nothing was hit (or beyond 65.535 m).
        """
        hit = self.cast(K, T_world_cam)
        depth_m = hit["depth_HW"]
        ok = np.isfinite(depth_m) & (depth_m * 1000.0 <= 65535)
        img = np.full((K.height, K.width, 3), background, np.uint8)
        tri = self._faces[hit["prim_HW"][ok]]
        uv = hit["uv_HW2"][ok]
        w = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)
        rgb = np.einsum("nk,nkc->nc", w, self._colors[tri])
        img[ok] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        depth_mm = np.zeros((K.height, K.width), np.uint16)
        depth_mm[ok] = np.round(depth_m[ok] * 1000.0).astype(np.uint16)
        return img, depth_mm
