"""BEV rendering speed on a ScanNet-size synthetic room, one CPU thread (run by hand).

    uv run python benchmarks/bench_bev.py [--repeats 5] [--naive]

Builds a ~150k-vertex / ~300k-face coloured room (floor, walls, ceiling, furniture, 5 mm
noise; ~3 cm triangles like ScanNet's ``vh_clean_2`` meshes) and times ``render_mesh_bev`` per
scene at 432 and 864 px with the numpy rasteriser (default backend) and with open3d ray casting
(BVH build included, split out below), next to a naive per-triangle Python rasteriser in the same
run (timed on 5 % of the faces and scaled up: its cost is linear in faces). Prints a markdown
table for docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core for every library, set before imports

import argparse
import platform
import statistics
import time

import numpy as np
from ross3d_data.bev.grid import BevConfig, floor_and_ceiling
from ross3d_data.bev.render import render_mesh_bev
from ross3d_data.core.records import Mesh

NAIVE_FRACTION = 0.05


def grid_quad(origin, u, v, cell_m: float, color, rng) -> Mesh:
    """A flat rectangle ``origin + s u + t v`` as a grid of ~``cell_m`` squares (2 faces each)."""
    nu = max(1, round(np.linalg.norm(u) / cell_m))
    nv = max(1, round(np.linalg.norm(v) / cell_m))
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    pts = np.asarray(origin) + s[..., None] * np.asarray(u) + t[..., None] * np.asarray(v)
    pts = pts.reshape(-1, 3) + rng.normal(0, 0.005, (pts.size // 3, 3))
    rgb = np.clip(np.asarray(color) + rng.normal(0, 12, pts.shape), 0, 255).astype(np.uint8)
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
    return Mesh(pts.astype(np.float32), rgb, faces)


def box_quads(lo, size, cell_m, color, rng) -> list[Mesh]:
    lo, (dx, dy, dz) = np.asarray(lo, float), np.diag(size)
    sides = [(lo, dy, dx), (lo + dz, dx, dy), (lo, dx, dz), (lo + dy, dz, dx), (lo, dz, dy),
             (lo + dx, dy, dz)]  # fmt: skip
    return [grid_quad(o, u, v, cell_m, color, rng) for o, u, v in sides]


def scannet_size_room(cell_m: float = 0.039, seed: int = 0) -> Mesh:
    """7 x 6 x 2.7 m room with 12 pieces of furniture; ~150k vertices, ~300k faces."""
    rng = np.random.default_rng(seed)
    X, Y, Z = np.array([7.0, 0, 0]), np.array([0, 6.0, 0]), np.array([0, 0, 2.7])
    parts = [grid_quad([0, 0, 0], X, Y, cell_m, (150, 140, 120), rng),
             grid_quad([0, 0, 2.7], X, Y, cell_m, (240, 240, 240), rng)]  # fmt: skip
    for o, u in (([0, 0, 0], X), ([0, 6, 0], X), ([0, 0, 0], Y), ([7, 0, 0], Y)):
        parts.append(grid_quad(o, u, Z, cell_m, (200, 200, 190), rng))
    for _ in range(12):
        size = rng.uniform([0.4, 0.4, 0.4], [1.8, 1.2, 1.9])
        lo = np.r_[rng.uniform([0.1, 0.1], [6.9, 5.9] - size[:2]), 0.0]
        parts += box_quads(lo, size, cell_m, rng.integers(30, 230, 3), rng)
    offsets = np.cumsum([0] + [len(p.vertices_N3) for p in parts[:-1]])
    return Mesh(
        np.concatenate([p.vertices_N3 for p in parts]),
        np.concatenate([p.colors_N3 for p in parts]),
        np.concatenate([p.faces_F3 + o for p, o in zip(parts, offsets, strict=True)]),
    )


def naive_raster(mesh: Mesh, size_px: int) -> np.ndarray:
    """Baseline: a straightforward z-buffer rasteriser looping over triangles in Python."""
    verts = mesh.vertices_N3.astype(np.float64)
    _, ceiling = floor_and_ceiling(verts[:, 2], BevConfig())
    lo, hi = verts[:, :2].min(axis=0), verts[:, :2].max(axis=0)
    side = float(max(hi - lo)) + 0.2
    mpp, x_left, y_top = side / size_px, (lo[0] + hi[0] - side) / 2, (lo[1] + hi[1] + side) / 2
    px = np.c_[(verts[:, 0] - x_left) / mpp, (y_top - verts[:, 1]) / mpp]
    zbuf = np.full((size_px, size_px), -np.inf)
    image = np.zeros((size_px, size_px, 3), np.uint8)
    for f in mesh.faces_F3:
        p, z = px[f], verts[f, 2]
        c0, r0 = np.maximum(np.ceil(p.min(axis=0) - 0.5).astype(int), 0)
        c1, r1 = np.minimum(np.floor(p.max(axis=0) - 0.5).astype(int), size_px - 1)
        if c1 < c0 or r1 < r0:
            continue
        cc, rr = np.meshgrid(np.arange(c0, c1 + 1) + 0.5, np.arange(r0, r1 + 1) + 0.5)
        T = np.array([p[1] - p[0], p[2] - p[0]]).T
        if abs(np.linalg.det(T)) < 1e-12:
            continue
        w12 = np.linalg.solve(T, np.stack([cc.ravel() - p[0, 0], rr.ravel() - p[0, 1]]))
        w = np.vstack([1 - w12.sum(axis=0), w12])
        depth = w.T @ z
        ok = (w >= -1e-7).all(axis=0) & (depth <= ceiling)
        rows, cols = (rr.ravel()[ok] - 0.5).astype(int), (cc.ravel()[ok] - 0.5).astype(int)
        front = depth[ok] > zbuf[rows, cols]
        zbuf[rows[front], cols[front]] = depth[ok][front]
        image[rows[front], cols[front]] = (w[:, ok][:, front].T @ mesh.colors_N3[f]).astype(
            np.uint8
        )
    return image


def cpu_seconds(fn, repeats: int) -> tuple[float, float]:
    """(median, best) CPU seconds of this process per call; one thread, so ~ uncontended wall.

    CPU time, not wall time, because the benchmark machine is shared: other jobs stretch the
    wall clock far more than the work this process does (the best run is the least disturbed).
    """
    fn()  # warm-up (imports, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), min(times)


def fmt_ms(median_best: tuple[float, float]) -> str:
    return f"{median_best[0] * 1e3:.0f} ms (best {median_best[1] * 1e3:.0f})"


def open3d_split(mesh: Mesh, size_px: int, repeats: int) -> tuple[float, float]:
    """Median CPU seconds (BVH build, ray casting) of open3d on one thread."""
    import open3d as o3d

    verts = o3d.core.Tensor(mesh.vertices_N3)
    faces = o3d.core.Tensor(mesh.faces_F3.astype(np.uint32))
    one_ray = o3d.core.Tensor(np.array([[3.5, 3.0, 2.0, 0, 0, -1]], np.float32))
    rays = np.zeros((size_px, size_px, 6), np.float32)
    rays[..., :2] = np.random.default_rng(0).uniform(0, 6, (size_px, size_px, 2))
    rays[..., 2], rays[..., 5] = 2.0, -1.0
    rays_t = o3d.core.Tensor(rays)
    builds, casts = [], []
    for _ in range(repeats):
        t0 = time.process_time()
        scene = o3d.t.geometry.RaycastingScene(nthreads=1)
        scene.add_triangles(verts, faces)
        scene.cast_rays(one_ray, nthreads=1)  # the BVH is built lazily on the first query
        t1 = time.process_time()
        scene.cast_rays(rays_t, nthreads=1)
        casts.append(time.process_time() - t1)
        builds.append(t1 - t0)
    return statistics.median(builds), statistics.median(casts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--naive", action="store_true", help="also time the naive baseline (slow)")
    args = ap.parse_args()
    mesh = scannet_size_room()
    print(f"mesh: {len(mesh.vertices_N3):,} vertices, {len(mesh.faces_F3):,} faces; "
          f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS=1, "
          f"CPU time over {args.repeats} runs; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    rows = []
    for size in (432, 864):
        render_mesh_bev(mesh, BevConfig(size_px=size))  # compile the jit kernel (cached)
        jit = cpu_seconds(lambda s=size: render_mesh_bev(mesh, BevConfig(size_px=s)), args.repeats)
        raster_cfg = BevConfig(size_px=size, backend="raster")
        raster = cpu_seconds(lambda c=raster_cfg: render_mesh_bev(mesh, c), args.repeats)
        o3d_cfg = BevConfig(size_px=size, backend="open3d", n_threads=1)
        o3d_total = cpu_seconds(lambda c=o3d_cfg: render_mesh_bev(mesh, c), args.repeats)
        build, cast = open3d_split(mesh, size, args.repeats)
        naive = float("nan")
        if args.naive:  # per-face cost is constant: time a random subset, scale to all faces
            pick = np.random.default_rng(0).random(len(mesh.faces_F3)) < NAIVE_FRACTION
            subset = Mesh(mesh.vertices_N3, mesh.colors_N3, mesh.faces_F3[pick])
            t0 = time.process_time()
            naive_raster(subset, size)
            naive = (time.process_time() - t0) * len(mesh.faces_F3) / pick.sum()
        rows.append((size, jit, raster, o3d_total, build, cast, naive))
    print("\n| size | jit (numba, default) | numpy raster | open3d total | open3d BVH build (all faces) | "
          f"open3d cast | naive Python loop ({NAIVE_FRACTION:.0%} of faces, scaled) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for size, jit, raster, o3d_total, build, cast, naive in rows:
        print(f"| {size} px | {fmt_ms(jit)} | {fmt_ms(raster)} | {fmt_ms(o3d_total)} "
              f"| {build * 1e3:.0f} ms | {cast * 1e3:.0f} ms | {naive:.1f} s |")  # fmt: skip
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
