"""Choosing which frames of a scene become the model's views.

Two policies, both from Video-3D-LLM (the codebase Ross3D extends):

* ``uniform`` (the Ross3D default): ``np.linspace(0, n - 1, count, dtype=int)`` over the valid
  frames, exactly as Video-3D-LLM's ``VideoProcessor.sample_frame_files``. The integer cast
  truncates, so with fewer frames than ``count`` some frames repeat (every frame appears at least
  once, in order) and the result always has ``count`` entries.
* ``max-coverage``: greedy maximum coverage of 0.1 m voxels (Video-3D-LLM's
  ``max_coverage_sampling.py``): each step takes the frame that adds the most voxels not yet
  covered. Differences from the reference, all deterministic: ties go to the lowest index
  (the reference picks at random); when no remaining frame adds anything new the covered set is
  reset, so the next picks cover the scene a second time from other viewpoints (the reference
  keeps picking random zero-gain frames); frames with no valid depth are picked last.
  ``choose_views`` returns the chosen ids sorted by frame id, as the reference sorts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import sparse

from ross3d_data.core.geometry import backproject_depth, depth_mm_to_m

if TYPE_CHECKING:
    from ross3d_data.core.scene import Scene

ViewMethod = Literal["uniform", "max-coverage"]
VIEW_METHODS: tuple[str, ...] = ("uniform", "max-coverage")

# Voxel keys pack three signed voxel indices into one int64 (21 bits each).
_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)


def select_uniform(frame_ids: Sequence[int], count: int) -> list[int]:
    """``count`` frame ids at ``np.linspace(0, n - 1, count, dtype=int)`` positions of
    ``frame_ids`` (kept in the given order; repeats when ``n < count``)."""
    ids = list(frame_ids)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not ids:
        raise ValueError("cannot select views: the scene has no valid frames")
    positions = np.linspace(0, len(ids) - 1, count, dtype=int)
    return [int(ids[p]) for p in positions]


def voxel_keys(points_N3: np.ndarray, voxel_size: float) -> np.ndarray:
    """Unique int64 keys of the voxels ``round(xyz / voxel_size)`` holding the points (sorted).

    Rounding (not flooring) matches Video-3D-LLM's ``discrete_point``.
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    idx = np.rint(np.asarray(points_N3, dtype=np.float64).reshape(-1, 3) / voxel_size)
    if idx.size and np.abs(idx).max() >= _KEY_OFFSET:
        raise ValueError(
            f"points too far from the origin for {voxel_size} m voxel keys "
            f"(|index| must be < {_KEY_OFFSET}); are the depth units metres?"
        )
    shifted = idx.astype(np.int64) + _KEY_OFFSET
    keys = (shifted[:, 0] << (2 * _KEY_BITS)) | (shifted[:, 1] << _KEY_BITS) | shifted[:, 2]
    return np.unique(keys)


def voxel_keys_to_indices(keys_N: np.ndarray) -> np.ndarray:
    """Inverse of the packing in ``voxel_keys``: int64 voxel indices ``(N, 3)``."""
    keys = np.asarray(keys_N, dtype=np.int64)
    mask = (1 << _KEY_BITS) - 1
    parts = [(keys >> (2 * _KEY_BITS)) & mask, (keys >> _KEY_BITS) & mask, keys & mask]
    return np.stack(parts, axis=-1) - _KEY_OFFSET


def frame_voxels(
    depth_mm_HW: np.ndarray,
    K_depth_33: np.ndarray,
    T_aligned_cam_44: np.ndarray,
    voxel_size: float = 0.1,
    stride: int = 4,
) -> np.ndarray:
    """Unique int64 keys of the aligned-frame voxels seen by one depth map.

    Only every ``stride``-th row/column is back-projected: at ScanNet ranges 4 px is ~1 cm,
    far below the 0.1 m voxel, so the voxel set barely changes while the cost drops 16x.
    An empty/invalid depth map gives an empty array.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    depth_m = depth_mm_to_m(depth_mm_HW)
    # Sub-sampling the depth and keeping K valid: pixel (u, v) of the sub-grid is (s*u, s*v).
    sub = depth_m[::stride, ::stride]
    K_sub = np.diag([1.0 / stride, 1.0 / stride, 1.0]) @ np.asarray(K_depth_33, dtype=np.float64)
    points, valid = backproject_depth(sub, K_sub, T_aligned_cam_44)
    return voxel_keys(points[valid], voxel_size)


def _sorted_unique(keys_N: np.ndarray) -> np.ndarray:
    """int64 keys sorted and unique (free when they already are, as frame_voxels returns them)."""
    keys = np.asarray(keys_N, dtype=np.int64).ravel()
    return keys if np.all(keys[1:] > keys[:-1]) else np.unique(keys)


def _membership_matrix(voxels_per_frame: Sequence[np.ndarray]) -> sparse.csr_matrix:
    """Binary frames x distinct-voxels CSR matrix."""
    per_frame = [_sorted_unique(v) for v in voxels_per_frame]
    lengths = [len(v) for v in per_frame]
    _, columns = np.unique(np.concatenate(per_frame), return_inverse=True)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    data = np.ones(len(columns), dtype=np.int64)
    n_voxels = int(columns.max()) + 1 if len(columns) else 0
    return sparse.csr_matrix((data, (rows, columns)), shape=(len(lengths), n_voxels))


def select_max_coverage(voxels_per_frame: Sequence[np.ndarray], count: int) -> list[int]:
    """Greedy maximum coverage: indices (into ``voxels_per_frame``) in the order picked.

    Each step takes the unpicked frame whose voxel keys add the most not-yet-covered voxels
    (ties: lowest index). When the best gain is zero but unpicked frames with voxels remain,
    the covered set is reset and the greedy starts a new round. Returns ``min(count, n)``
    distinct indices.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    n = len(voxels_per_frame)
    if n == 0:
        return []
    member = _membership_matrix(voxels_per_frame)
    sizes = np.asarray(member.sum(axis=1)).ravel()
    uncovered = np.ones(member.shape[1], dtype=np.int64)
    picked = np.zeros(n, dtype=bool)
    order: list[int] = []
    while len(order) < min(count, n):
        gains = np.where(picked, -1, member @ uncovered)
        if gains.max() == 0 and (sizes[~picked] > 0).any():
            uncovered[:] = 1  # everything new is taken: start another covering round
            continue
        best = int(np.argmax(gains))
        order.append(best)
        picked[best] = True
        uncovered[member.indices[member.indptr[best] : member.indptr[best + 1]]] = 0
    return order


def choose_views(
    scene: Scene,
    count: int = 32,
    method: ViewMethod = "uniform",
    voxel_size: float = 0.1,
    stride: int = 4,
    max_candidates: int = 300,
) -> list[int]:
    """Frame ids of ``count`` views of ``scene`` (only its valid frames are considered).

    ``uniform`` reads no images. ``max-coverage`` loads every valid frame's depth, keeps its
    voxels that also hold an aligned mesh vertex when the scene has a mesh (as the reference
    does with the scan's vertex cloud, to ignore depth noise), and returns the picks sorted by frame id. With fewer valid frames than
    ``count`` both methods return every frame, repeated as in ``uniform``. ``max-coverage``
    considers at most ``max_candidates`` frames, spread uniformly (a raw ``.sens`` stream has
    thousands; the reference used every 20th frame of the stream).
    """
    if method not in VIEW_METHODS:
        raise ValueError(f"unknown view method {method!r}; expected one of {VIEW_METHODS}")
    frame_ids = scene.frame_ids()
    if method == "uniform" or len(frame_ids) <= count:
        return select_uniform(frame_ids, count)
    if max_candidates < count:
        raise ValueError(f"max_candidates ({max_candidates}) must be >= count ({count})")
    if len(frame_ids) > max_candidates:
        frame_ids = select_uniform(frame_ids, max_candidates)  # distinct: n > max_candidates
    voxels = [
        frame_voxels(
            scene.load_frame(fid).depth_mm_HW,
            scene.frame_intrinsics(fid)[1].K_33,  # per frame: upright frames vary
            scene.T_aligned_cam(fid),
            voxel_size,
            stride,
        )
        for fid in frame_ids
    ]
    mesh = scene.mesh_aligned()
    if mesh is not None and len(mesh.vertices_N3):
        mesh_keys = voxel_keys(mesh.vertices_N3, voxel_size)
        voxels = [v[np.isin(v, mesh_keys, assume_unique=True)] for v in voxels]
    picks = select_max_coverage(voxels, count)
    return sorted(frame_ids[i] for i in picks)
