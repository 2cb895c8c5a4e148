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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ross3d_data.bev.jit import render_mesh_jit
from ross3d_data.bev.raster import render_mesh_raster, render_mesh_raycast, render_points_zbuffer
from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import JobSummary, make_out_dir, run_scene_jobs
from ross3d_data.core.records import Mesh
from ross3d_data.datasets import find_scenes, load_scene

BACKENDS = ("jit", "raster", "open3d")


@dataclass(frozen=True)
class BevConfig:
    """How to render one BEV image (see the module docstring for the picture contract).

    ``backend`` renders meshes: ``jit`` (compiled z-buffer via numba, default, fastest),
    ``raster`` (the same rule in pure numpy) or ``open3d`` (Embree ray casting). ``supersample`` > 1 renders ``supersample**2`` samples per
    pixel and averages the ones that hit something (anti-aliasing). The ``fusion_*`` fields
    only matter for scenes without a mesh: use at most ``fusion_max_frames`` frames (uniformly
    spread), every ``fusion_depth_stride``-th depth pixel, depths up to ``fusion_max_depth_m``;
    ``fusion_fill_holes`` rounds fill empty pixels mostly surrounded by filled ones.
    """

    size_px: int = 432
    ceiling_above_floor_m: float = 2.0
    floor_percentile: float = 2.0
    margin_m: float = 0.1
    backend: str = "jit"
    supersample: int = 1
    n_threads: int = 0
    fusion_max_frames: int = 300
    fusion_depth_stride: int = 1
    fusion_max_depth_m: float = 6.0
    fusion_fill_holes: int = 1

    def __post_init__(self) -> None:
        if self.size_px < 8:
            raise ValueError(f"size_px must be >= 8, got {self.size_px}")
        if not self.ceiling_above_floor_m > 0:
            raise ValueError(f"ceiling_above_floor_m must be > 0, got {self.ceiling_above_floor_m}")
        if not 0 <= self.floor_percentile < 50:
            raise ValueError(f"floor_percentile must be in [0, 50), got {self.floor_percentile}")
        if not self.margin_m >= 0:
            raise ValueError(f"margin_m must be >= 0, got {self.margin_m}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.supersample < 1 or self.n_threads < 0:
            raise ValueError(
                f"supersample must be >= 1 and n_threads >= 0, got {self.supersample}, "
                f"{self.n_threads}"
            )
        if self.fusion_max_frames < 1 or self.fusion_depth_stride < 1:
            raise ValueError("fusion_max_frames and fusion_depth_stride must be >= 1")
        if not self.fusion_max_depth_m > 0 or self.fusion_fill_holes < 0:
            raise ValueError("fusion_max_depth_m must be > 0 and fusion_fill_holes >= 0")


@dataclass(frozen=True)
class BevGrid:
    """The square pixel grid of a BEV image in the aligned frame.

    Column ``c`` spans ``x in [x_left + c * mpp, x_left + (c + 1) * mpp)``, row ``r`` spans
    ``y in (y_top - (r + 1) * mpp, y_top - r * mpp]``.
    """

    size_px: int
    x_left: float
    y_top: float
    meters_per_pixel: float

    @property
    def world_to_pixel_33(self) -> np.ndarray:
        """float64 3x3 mapping aligned ``(x, y, 1)`` to continuous ``(col, row, 1)``."""
        s = 1.0 / self.meters_per_pixel
        return np.array([[s, 0.0, -self.x_left * s], [0.0, -s, self.y_top * s], [0.0, 0.0, 1.0]])

    def to_pixel(self, points_N3: np.ndarray) -> np.ndarray:
        """Aligned ``(x, y, z)`` -> ``(col, row, z)`` (continuous pixel position, z kept)."""
        pts = np.asarray(points_N3, dtype=np.float64)
        out = np.empty_like(pts)
        out[:, 0] = (pts[:, 0] - self.x_left) / self.meters_per_pixel
        out[:, 1] = (self.y_top - pts[:, 1]) / self.meters_per_pixel
        out[:, 2] = pts[:, 2]
        return out

    def scaled(self, factor: int) -> BevGrid:
        """The same area at ``factor`` times the resolution (for supersampling)."""
        return BevGrid(
            self.size_px * factor, self.x_left, self.y_top, self.meters_per_pixel / factor
        )


def grid_for_extent(xy_min: np.ndarray, xy_max: np.ndarray, size_px: int, margin_m: float):
    """Square grid centred on the box ``[xy_min, xy_max]``, side = larger extent + 2 margins."""
    xy_min, xy_max = np.asarray(xy_min, np.float64), np.asarray(xy_max, np.float64)
    side = float(max(xy_max - xy_min)) + 2.0 * margin_m
    if not side > 0:
        raise ValueError(f"empty BEV extent {xy_min}..{xy_max} with margin {margin_m}")
    centre = (xy_min + xy_max) / 2.0
    return BevGrid(size_px, centre[0] - side / 2.0, centre[1] + side / 2.0, side / size_px)


@dataclass(frozen=True)
class BevResult:
    """A rendered BEV image and where it sits in the aligned frame."""

    image_HW3: np.ndarray  # uint8 RGB, black = empty
    world_to_pixel_33: np.ndarray  # float64, aligned (x, y, 1) -> (col, row, 1)
    meters_per_pixel: float
    floor_z: float
    ceiling_z: float
    backend: str
    source: str  # "mesh" or "fusion"

    def to_json(self, scene_id: str) -> dict:
        """The ``bev.json`` record (conventions spelled out for readers of the file)."""
        h, w = self.image_HW3.shape[:2]
        return {
            "scene_id": scene_id,
            "width": int(w),
            "height": int(h),
            "meters_per_pixel": float(self.meters_per_pixel),
            "world_to_pixel": [float(v) for v in self.world_to_pixel_33.reshape(-1)],
            "floor_z": float(self.floor_z),
            "ceiling_z": float(self.ceiling_z),
            "backend": self.backend,
            "source": self.source,
            "frame": "aligned",
            "conventions": (
                "world_to_pixel: row-major 3x3, aligned (x, y, 1) -> (col, row, 1); pixel "
                "(col, row) covers [col, col+1) x [row, row+1), centre at +0.5; +x right, +y up "
                "(row 0 = max y); geometry above ceiling_z removed; black = empty"
            ),
        }


def floor_and_ceiling(z_N: np.ndarray, cfg: BevConfig) -> tuple[float, float]:
    """``(floor_z, ceiling_z)`` from the geometry's heights (see BevConfig)."""
    floor_z = float(np.percentile(np.asarray(z_N, dtype=np.float64), cfg.floor_percentile))
    return floor_z, floor_z + cfg.ceiling_above_floor_m


def grid_below(points_N3: np.ndarray, ceiling_z: float, cfg: BevConfig) -> BevGrid:
    """The BEV grid covering the xy extent of the points at or below the cut."""
    below = points_N3[:, 2] <= ceiling_z
    if not below.any():
        raise ValueError(f"no geometry at or below the ceiling cut z = {ceiling_z:.3f} m")
    x, y = points_N3[below, 0], points_N3[below, 1]  # per column: axis-0 reductions are slow
    return grid_for_extent([x.min(), y.min()], [x.max(), y.max()], cfg.size_px, cfg.margin_m)


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


def fill_small_holes(image_HW3: np.ndarray, rounds: int, min_neighbours: int = 5) -> np.ndarray:
    """Fill black pixels with >= ``min_neighbours`` of 8 non-black neighbours by their mean.

    Point splats leave pinholes between samples; requiring most neighbours to be filled closes
    them without growing the scene's outline into empty space.
    """
    img = image_HW3.copy()
    for _ in range(rounds):
        filled = img.any(axis=2)
        pad_img = np.pad(img.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
        pad_hit = np.pad(filled, 1)
        total = np.zeros(img.shape, dtype=np.float64)
        count = np.zeros(filled.shape, dtype=np.int64)
        h, w = filled.shape
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                if dr == 1 and dc == 1:
                    continue
                total += pad_img[dr : dr + h, dc : dc + w]
                count += pad_hit[dr : dr + h, dc : dc + w]
        holes = ~filled & (count >= min_neighbours)
        img[holes] = np.clip(np.rint(total[holes] / count[holes, None]), 1, 255).astype(np.uint8)
    return img


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
            return render_mesh_bev(mesh, cfg)
        from ross3d_data.bev.fusion import render_fused_bev

        return render_fused_bev(scene, cfg)
    except ValueError as exc:
        raise SceneError(scene.root, f"cannot render BEV: {exc}") from exc


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


def _bev_job(payload: tuple[Path, Path, BevConfig]) -> str:
    """Render and write one scene; returns a one-line note for the summary."""
    scene_dir, out_dir, cfg = payload
    scene = load_scene(scene_dir)
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
) -> JobSummary:
    """Render ``out_dir/<scene_id>/bev.{png,json}`` for every scene under ``scene_paths``.

    Each path is a scene folder or a folder of scene folders (``find_scenes``). Finished
    scenes are skipped unless ``overwrite``; a failing scene is reported in the summary and the
    others continue.
    """
    out_dir = make_out_dir(out_dir)
    items = [
        (scene_dir.name, (scene_dir, out_dir, cfg))
        for path in scene_paths
        for scene_dir in find_scenes(path)
    ]
    return run_scene_jobs(
        items, _bev_job, workers=workers, desc="render BEV",
        is_done=lambda payload: is_bev_done(out_dir, payload[0].name), overwrite=overwrite,
    )  # fmt: skip
