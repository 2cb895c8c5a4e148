"""Benchmark ScanNet-size reading (PLY, .sens, export, posed frames) and demo generation.

Run: ``uv run python benchmarks/bench_scene_reading.py``. Synthetic data of ScanNet's sizes
(150k-vertex / 300k-face mesh; 1296x968 JPEG colour + 640x480 zlib depth frames).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from ross3d_data.core.records import Frame, Intrinsics, Mesh
from ross3d_data.datasets import load_scene
from ross3d_data.scannet.export import export_scene_frames
from ross3d_data.scannet.ply import read_ply, write_ply
from ross3d_data.scannet.sens import SensHeader, write_sens

N_FRAMES = 300


def _best(fn, repeat=5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_ply(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    n, f = 150_000, 300_000
    mesh = Mesh(rng.normal(size=(n, 3)).astype(np.float32),
                rng.integers(0, 256, (n, 3)).astype(np.uint8), rng.integers(0, n, (f, 3)))  # fmt: skip
    path = tmp / "big_vh_clean_2.ply"
    write_ply(path, mesh)
    print(f"read_ply 150k verts / 300k faces: {_best(lambda: read_ply(path)) * 1e3:.1f} ms")
    import trimesh

    t = _best(lambda: trimesh.load(path, process=False), 3)
    print(f"  (trimesh.load same file: {t * 1e3:.1f} ms)")


def _frames(color_k: Intrinsics, depth_k: Intrinsics):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0 : color_k.height, 0 : color_k.width]
    base = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    dy, dx = np.mgrid[0 : depth_k.height, 0 : depth_k.width]
    for i in range(N_FRAMES):
        depth = (1500 + 3 * dx + 2 * dy + rng.integers(0, 20, dx.shape)).astype(np.uint16)
        pose = np.eye(4) if i % 50 != 7 else np.full((4, 4), -np.inf)
        yield Frame(i, np.roll(base, i, 1), depth, pose)


def bench_sens(tmp: Path) -> None:
    color_k = Intrinsics(1170.2, 1170.2, 647.75, 483.75, 1296, 968)
    depth_k = Intrinsics(571.6, 571.6, 319.5, 239.5, 640, 480)
    scene = tmp / "scene0000_00"
    scene.mkdir()
    sens_file = scene / "scene0000_00.sens"
    write_sens(sens_file, SensHeader(color_k, depth_k, N_FRAMES), _frames(color_k, depth_k))
    mb = sens_file.stat().st_size / 2**20
    print(f".sens: {N_FRAMES} frames 1296x968 JPEG + 640x480 zlib depth, {mb:.0f} MiB")
    t = _best(lambda: load_scene(scene).frame_ids(), 3)
    print(f"index .sens (load_scene + frame_ids, heads only): {t * 1e3:.1f} ms")
    s = load_scene(scene)
    ids = s.frame_ids()[::10]
    t = _best(lambda: [s.load_frame(i) for i in ids], 1) / len(ids)
    print(f"random-access decode from .sens: {t * 1e3:.1f} ms/frame")
    out = tmp / "out"
    t0 = time.perf_counter()
    manifest = export_scene_frames(sens_file, out, every=10)
    t = time.perf_counter() - t0
    print(f"export every 10th ({manifest['frames']} frames): {t:.2f} s "
          f"({t / manifest['frames'] * 1e3:.1f} ms/frame)")  # fmt: skip
    p = load_scene(scene, frames_dir=out)
    ids = p.frame_ids()
    t = _best(lambda: [p.load_frame(i) for i in ids], 1) / len(ids)
    print(f"posed-folder frame read (jpg+png+txt): {t * 1e3:.1f} ms/frame")


def bench_demo(tmp: Path) -> None:
    from ross3d_data.synthetic.raycast import import_open3d
    from ross3d_data.synthetic.scenes import make_demo

    import_open3d()  # one-off import cost (seconds) is not the demo's
    t0, c0 = time.perf_counter(), time.process_time()
    make_demo(tmp / "demo", n_scenes=2)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"make_demo, 2 scenes x 80 frames: {wall:.1f} s wall, {cpu:.1f} s CPU")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        bench_ply(Path(d))
        bench_sens(Path(d))
        bench_demo(Path(d))
