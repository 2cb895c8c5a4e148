"""Timing of the per-clip geometry: view overlap, token coordinates, view preparation, coverage.

Run by hand: ``uv run python benchmarks/bench_views_overlap.py``; append the printed table to
docs/benchmarks.md together with the machine description.
"""

from __future__ import annotations

import time

import numpy as np
from ross3d_data.core.records import Intrinsics
from ross3d_data.views.coords import prepare_view, token_coordinates
from ross3d_data.views.overlap import view_overlap
from ross3d_data.views.selection import frame_voxels, select_max_coverage

V, S = 32, 384
K_CROP = np.array([[300.0, 0, 191.5], [0, 300.0, 191.5], [0, 0, 1]])
COLOR_K = Intrinsics(1170.0, 1170.0, 647.5, 483.5, 1296, 968)  # ScanNet sizes
DEPTH_K = Intrinsics(577.0, 577.0, 319.5, 239.5, 640, 480)


def best_of(fn, repeats: int = 5) -> tuple[float, float]:
    """Best wall-clock and best CPU (process) time in seconds; CPU time is the fairer number on
    a machine shared with other jobs."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def circle_poses(n: int, radius: float = 1.5) -> np.ndarray:
    """Cameras on a circle looking at the centre (z up in the aligned frame)."""
    poses = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        eye = np.array([radius * np.cos(a), radius * np.sin(a), 1.4])
        fwd = -eye / np.linalg.norm(eye)
        right = np.cross(fwd, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        T = np.eye(4)
        T[:3, :3] = np.c_[right, down, fwd]
        T[:3, 3] = eye
        poses.append(T)
    return np.stack(poses)


def main() -> None:
    rng = np.random.default_rng(0)
    depth_m = rng.uniform(1.0, 4.0, (V, S, S))
    poses = circle_poses(V)
    Ks = np.stack([K_CROP] * V)
    rows = []
    for stride in (8, 4):
        t = best_of(lambda s=stride: view_overlap(depth_m, Ks, poses, stride=s))
        rows.append((f"view_overlap, 32 views 384x384, stride {stride}", t))
    depth_mm = (depth_m * 1000).astype(np.uint16)
    t = best_of(
        lambda: [token_coordinates(d, K_CROP, T) for d, T in zip(depth_mm, poses, strict=True)]
    )
    rows.append(("token_coordinates x 32 views", t))
    color = rng.integers(0, 255, (968, 1296, 3), dtype=np.uint8)
    depth = rng.integers(500, 4000, (480, 640)).astype(np.uint16)
    t = best_of(lambda: [prepare_view(color, depth, COLOR_K, DEPTH_K, T) for T in poses], 2)
    rows.append(("prepare_view x 32 (1296x968 colour, 640x480 depth)", t))
    many = circle_poses(300, radius=2.0)
    t = best_of(lambda: [frame_voxels(depth, DEPTH_K.K_33, T) for T in many[:32]], 2)
    rows.append(("frame_voxels x 32 (640x480, stride 4)", t))
    voxels = [frame_voxels(depth, DEPTH_K.K_33, T) for T in many]
    t = best_of(lambda: select_max_coverage(voxels, 32), 3)
    rows.append((f"select_max_coverage 32 of 300 frames ({sum(map(len, voxels))} keys)", t))
    print("| operation | best wall time | best CPU time |")
    print("|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall * 1000:.0f} ms | {cpu * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
