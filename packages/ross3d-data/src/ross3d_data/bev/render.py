"""Bird's-eye-view (BEV) images: an orthographic top-down colour picture of an aligned scene.

Picture contract (docs/contracts.md section 1):

- the scene is seen from above in the *aligned* frame (z up); everything higher than the
  ceiling cut is removed, so ceilings and lamps never hide the floor plan;
- the ceiling cut is ``floor_z + ceiling_above_floor_m`` (default 2.0 m, which keeps 1.8 m
  wardrobes and door frames), where ``floor_z`` is the ``floor_percentile`` (default 2 %)
  percentile of the geometry's heights, robust to a few stray points under the floor;
- the image is square (``size_px``, default 432); it covers the xy extent of the geometry
  below the cut, centred, with ``margin_m`` on every side of the larger extent;
- orientation is fixed: +x to the right, +y up the image (row 0 is the largest y);
- pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)`` of the continuous pixel
  plane, so its centre is ``(col + 0.5, row + 0.5)``; ``world_to_pixel_33`` maps aligned
  ``(x, y, 1)`` to continuous ``(col, row, 1)`` and the pixel holding a point is
  ``floor(col), floor(row)``;
- empty space (nothing below the cut) is black ``(0, 0, 0)``.

Scenes with a mesh are rendered from ``scene.mesh_aligned()``; scenes without one from their
posed RGB-D frames fused into a coloured point cloud (``ross3d_data.bev.fusion``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ross3d_data.bev.fusion import render_fused_bev
from ross3d_data.bev.grid import (
    BevConfig,
    BevResult,
    fill_small_holes,
    floor_and_ceiling,
    grid_below,
)
from ross3d_data.bev.jit import render_mesh_jit
from ross3d_data.bev.raster import render_mesh_raster, render_mesh_raycast, render_points_zbuffer
from ross3d_data.core.engines import Engine, TaskResources, check_engine
from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import JobSummary, make_out_dir, run_scene_jobs
from ross3d_data.core.records import Mesh
from ross3d_data.datasets import find_scenes, load_scene
from ross3d_data.datasets.registry import scene_id_of


def _downsample(image_HW3: np.ndarray, hit_HW: np.ndarray, factor: int) -> np.ndarray:
    """Average the hit samples of each ``factor x factor`` block (black when none hit)."""
    n = image_HW3.shape[0] // factor
    img = (image_HW3.astype(np.float64) * hit_HW[..., None]).reshape(n, factor, n, factor, 3)
    hits = hit_HW.reshape(n, factor, n, factor).sum(axis=(1, 3))
    mean = img.sum(axis=(1, 3)) / np.maximum(hits, 1)[..., None]
    return np.clip(np.rint(mean), 0, 255).astype(np.uint8)


def render_mesh_bev(mesh: Mesh, cfg: BevConfig) -> BevResult:
    """BEV of an aligned-frame mesh (vertex colours interpolated on the visible face)."""
    verts = np.asarray(mesh.vertices_N3, dtype=np.float64)
    if len(mesh.faces_F3) == 0 or len(verts) == 0:
        raise ValueError("mesh has no faces")
    if not np.isfinite(verts).all():
        raise ValueError(f"mesh has {(~np.isfinite(verts).all(axis=1)).sum()} non-finite vertices")
    floor_z, ceiling_z = floor_and_ceiling(verts[:, 2], cfg)
    grid = grid_below(verts, ceiling_z, cfg)
    fine = grid.scaled(cfg.supersample)
    verts_px = fine.to_pixel(verts)
    if cfg.backend == "open3d":
        image, hit = render_mesh_raycast(
            verts_px, mesh.colors_N3, mesh.faces_F3, fine.size_px, ceiling_z, cfg.n_threads
        )
    elif cfg.backend == "jit":
        image, hit = render_mesh_jit(
            verts_px, mesh.colors_N3, mesh.faces_F3, fine.size_px, ceiling_z
        )
    else:
        image, hit = render_mesh_raster(
            verts_px, mesh.colors_N3, mesh.faces_F3, fine.size_px, ceiling_z
        )
    if cfg.supersample > 1:
        image = _downsample(image, hit, cfg.supersample)
    return BevResult(
        image, grid.world_to_pixel_33, grid.meters_per_pixel, floor_z, ceiling_z,
        cfg.backend, "mesh",
    )  # fmt: skip


def render_points_bev(points_N3: np.ndarray, colors_N3: np.ndarray, cfg: BevConfig) -> BevResult:
    """BEV of a coloured aligned-frame point cloud: the highest point below the cut wins."""
    pts = np.asarray(points_N3, dtype=np.float64)
    if len(pts) == 0:
        raise ValueError("no points to render")
    floor_z, ceiling_z = floor_and_ceiling(pts[:, 2], cfg)
    grid = grid_below(pts, ceiling_z, cfg)
    image, _ = render_points_zbuffer(grid.to_pixel(pts), colors_N3, cfg.size_px, ceiling_z)
    image = fill_small_holes(image, cfg.fusion_fill_holes)
    return BevResult(
        image, grid.world_to_pixel_33, grid.meters_per_pixel, floor_z, ceiling_z, "zbuffer",
        "fusion",
    )  # fmt: skip


def render_bev(scene, cfg: BevConfig) -> BevResult:
    """BEV of a ``ross3d_data.scannet.scene.Scene``: its aligned mesh, else its fused RGB-D frames.

    Raises SceneError (naming the scene folder) when there is nothing to render.
    """
    mesh = scene.mesh_aligned()
    try:
        if mesh is not None and len(mesh.faces_F3) > 0:
            result = render_mesh_bev(mesh, cfg)
        else:
            result = render_fused_bev(scene, cfg)
    except ValueError as exc:
        raise SceneError(scene.root, f"cannot render BEV: {exc}") from exc
    # bev.json records how the picture's frame sits in the dataset's raw world
    return replace(result, T_aligned_world_44=np.asarray(scene.T_aligned_world, np.float64))


def write_bev(result: BevResult, scene_id: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``out_dir/<scene_id>/bev.png`` and ``bev.json``; returns both paths.

    Each file is written under a temporary name and renamed, the JSON last, so a killed run
    never leaves a scene that looks finished (see ``is_bev_done``).
    """
    from PIL import Image

    folder = Path(out_dir) / scene_id
    folder.mkdir(parents=True, exist_ok=True)
    png, meta = folder / "bev.png", folder / "bev.json"
    tmp_png, tmp_meta = folder / ".bev.png.partial", folder / ".bev.json.partial"
    Image.fromarray(result.image_HW3, mode="RGB").save(tmp_png, format="PNG")
    tmp_png.replace(png)
    tmp_meta.write_text(json.dumps(result.to_json(scene_id), indent=2) + "\n")
    tmp_meta.replace(meta)
    return png, meta


def is_bev_done(out_dir: Path, scene_id: str) -> bool:
    """True when ``out_dir/<scene_id>`` holds both BEV files."""
    folder = Path(out_dir) / scene_id
    return (folder / "bev.png").is_file() and (folder / "bev.json").is_file()


def _bev_job(payload: tuple[Path, Path, BevConfig, str | None]) -> str:
    """Render and write one scene; returns a one-line note for the summary."""
    scene_dir, out_dir, cfg, fmt = payload
    scene = load_scene(scene_dir, fmt=fmt)
    result = render_bev(scene, cfg)
    write_bev(result, scene.scene_id, out_dir)
    covered = float(result.image_HW3.any(axis=2).mean())
    return (
        f"{result.source} ({result.backend}), {100 * result.meters_per_pixel:.2f} cm/px, "
        f"{covered:.0%} non-empty"
    )


def render_bev_scenes(
    scene_paths: list[Path],
    out_dir: Path,
    cfg: BevConfig,
    workers: int = 1,
    overwrite: bool = False,
    engine: Engine = "local",
    ray_address: str | None = None,
    fmt: str | None = None,
) -> JobSummary:
    """Render ``out_dir/<scene_id>/bev.{png,json}`` for every scene under ``scene_paths``.

    Each path is a scene folder, a folder of scene folders or a dataset root (``find_scenes``;
    ``fmt``: a ``datasets.FORMATS`` name forced on every folder, None: detect). Finished
    scenes are skipped unless ``overwrite``; a failing scene is reported in the summary and the
    others continue. ``engine``/``ray_address``: where the scenes run (``core.engines``).
    """
    check_engine(engine, ray_address)
    out_dir = make_out_dir(out_dir)
    items = [
        (scene_id_of(scene_dir, fmt), (scene_dir, out_dir, cfg, fmt))
        for path in scene_paths
        for scene_dir in find_scenes(path, fmt)
    ]
    return run_scene_jobs(
        items, _bev_job, workers=workers, desc="render BEV",
        is_done=lambda payload: is_bev_done(out_dir, scene_id_of(payload[0], fmt)), overwrite=overwrite,
        engine=engine, ray_address=ray_address, resources=TaskResources(cpus=1.0, memory_gib=2.0),
    )  # fmt: skip
