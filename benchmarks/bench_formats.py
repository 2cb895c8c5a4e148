"""Per-scene cost of each dataset reader: open, read every frame, BEV, one clip (issue 17).

Run: ``uv run python benchmarks/bench_formats.py [--frames 24] [--views 8] [--repeat 3]``.
Scenes come from the synthetic generators of the tests (``tests/data/layouts``, ScanNet's demo
writer), each in its dataset's exact published layout but at SYNTHETIC sizes: the demo room's
mesh (a few thousand faces), a few dozen frames, colour at 640x480 or less (3RScan 960x540), so
the numbers compare the readers' fixed costs and per-frame decode paths, not real scan sizes
(real ScanNet++/MultiScan video is 1920x1440; real meshes have 10^5-10^6 faces).

Stages, best of ``--repeat`` wall times (each from a fresh ``load_scene``):
``open``: ``load_scene`` (index files, traj/COLMAP/jsonl parsing, depth-stream checkpoints);
``frames``: ``load_frame`` of every posed frame (colour + depth decode, upright rotation);
``bev``: ``render_bev`` (mesh, jit backend; numba compiled once before timing);
``fused BEV``: ``render_fused_bev`` (the path of a scene without a mesh: every frame read);
``clip``: ``prepare_clip`` + ``encode_clip`` with ``--views`` views (what build-shards does per scene).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "data"))

from layouts.arkitscenes import write_arkit_video
from layouts.multiscan import write_multiscan_scan
from layouts.rscan import write_rscan_scan
from layouts.scannetpp import write_scannetpp_scene
from ross3d_data.bev.fusion import render_fused_bev
from ross3d_data.bev.grid import BevConfig
from ross3d_data.bev.render import render_bev
from ross3d_data.datasets import load_scene
from ross3d_data.shards.sample import SampleConfig, encode_clip, prepare_clip
from ross3d_data.synthetic.scenes import make_demo

RSCAN_ID = "0cac7536-8d6f-2d13-8dc2-2f9d7aa62dc4"


def write_scenes(root: Path, n_frames: int) -> dict[str, Path]:
    """One scene folder per format (ScanNet++ has its generator's fixed 24 frames)."""
    return {
        "scannet": make_demo(root / "scannet", n_scenes=1, n_frames=2 * n_frames)[0],
        "arkitscenes": write_arkit_video(root / "arkit" / "Training", n_frames=n_frames).path,
        "scannetpp": write_scannetpp_scene(root / "scannetpp", "0a1b2c3d4e").scene_dir,
        "3rscan": write_rscan_scan(
            root / "3rscan", RSCAN_ID, n_frames=n_frames, zipped=True
        ).scan_dir,
        "multiscan": write_multiscan_scan(root / "multiscan", n_frames=n_frames).scan_dir,
    }


def _best(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _read_all(scene_dir: Path) -> tuple[int, tuple[int, int], tuple[int, int]]:
    scene = load_scene(scene_dir)
    frames = [scene.load_frame(i) for i in scene.frame_ids()]
    return len(frames), frames[0].color_HW3.shape[:2], frames[0].depth_mm_HW.shape[:2]


def bench_scene(name: str, scene_dir: Path, views: int, repeat: int) -> dict:
    t_open, scene = _best(lambda: load_scene(scene_dir), repeat)
    t_read, (n, color_hw, depth_hw) = _best(lambda: _read_all(scene_dir), repeat)
    cfg = BevConfig()
    t_bev, bev = _best(lambda: render_bev(load_scene(scene_dir), cfg), repeat)
    t_fused, _ = _best(lambda: render_fused_bev(load_scene(scene_dir), cfg), repeat)
    sample = SampleConfig(views=views)
    t_clip, members = _best(lambda: encode_clip(prepare_clip(scene_dir, sample, None)), repeat)
    faces = len(scene.mesh_aligned().faces_F3) if scene.mesh_aligned() is not None else 0
    return {
        "format": name, "frames": n, "color": f"{color_hw[1]}x{color_hw[0]}",
        "depth": f"{depth_hw[1]}x{depth_hw[0]}", "faces": faces, "open_s": t_open,
        "frames_s": t_read - t_open, "per_frame_ms": 1e3 * (t_read - t_open) / n,
        "bev_s": t_bev, "bev_source": bev.source, "fused_s": t_fused, "clip_s": t_clip,
        "clip_mb": sum(len(d) for _, d in members) / 1e6,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="frames per scene (generators)")
    parser.add_argument("--views", type=int, default=8, help="views per clip")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.machine()}, {platform.python_version()}, {args.frames} frames, "
          f"{args.views} views, best of {args.repeat}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        scenes = write_scenes(Path(tmp), args.frames)
        render_bev(load_scene(scenes["scannet"]), BevConfig())  # numba compile, not timed
        print("| format | frames | colour | depth | mesh faces | open s | frames s (ms/frame) "
              "| BEV s (source) | fused BEV s | clip s | clip MB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, scene_dir in scenes.items():
            r = bench_scene(name, scene_dir, args.views, args.repeat)
            print(f"| {r['format']} | {r['frames']} | {r['color']} | {r['depth']} | {r['faces']} "
                  f"| {r['open_s']:.3f} | {r['frames_s']:.3f} ({r['per_frame_ms']:.1f}) "
                  f"| {r['bev_s']:.3f} ({r['bev_source']}) | {r['fused_s']:.3f} | {r['clip_s']:.3f} "
                  f"| {r['clip_mb']:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
