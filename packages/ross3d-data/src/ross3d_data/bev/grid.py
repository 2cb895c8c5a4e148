"""The BEV picture contract in code: the render config, the square pixel grid in the aligned
frame, the rendered result (and its ``bev.json`` record), the floor / ceiling cut and the
hole filling of point splats. Everything here is pure numpy; the renderers (``render``,
``fusion``) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACKENDS = ("jit", "raster", "open3d")


@dataclass(frozen=True)
class BevConfig:
    """How to render one BEV image (``bev.render``'s docstring states the picture contract).

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
    # raw dataset world -> the aligned frame drawn (render_bev sets it from the scene)
    T_aligned_world_44: np.ndarray | None = None

    def to_json(self, scene_id: str) -> dict:
        """The ``bev.json`` record (conventions spelled out for readers of the file)."""
        h, w = self.image_HW3.shape[:2]
        record = {
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
        if self.T_aligned_world_44 is not None:  # row-major 4x4: aligned = T @ raw world
            record["T_aligned_world"] = [float(v) for v in self.T_aligned_world_44.reshape(-1)]
        return record


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
