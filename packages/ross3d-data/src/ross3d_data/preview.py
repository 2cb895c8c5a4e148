"""A one-picture check of a scene's views: thumbnails, their overlap and where the cameras are.

``write_preview`` draws three panels side by side (matplotlib, Agg backend, fixed pixel size
``width_px x height_px``):

1. the chosen views (prepared exactly as the model gets them: 384x384 crops), each titled with
   its view index, frame id and coverage (fraction seen by some other view);
2. the ``overlap[i, j]`` matrix as a heat map;
3. the BEV image with each camera's position and top-down frustum, numbered by view index.
   The BEV comes from ``bev_dir/<scene_id>/bev.{png,json}`` when present, else it is rendered;
   when the scene cannot be rendered the cameras are drawn on a blank canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.geometry import camera_frustum_corners, depth_mm_to_m
from ross3d_data.views.coords import PreparedView, prepare_view
from ross3d_data.views.overlap import view_overlap
from ross3d_data.views.selection import VIEW_METHODS, choose_views


@dataclass(frozen=True)
class PreviewConfig:
    """What to draw. ``frustum_depth_m``: how far the drawn frustums reach; ``scene_format``: a
    ``datasets.FORMATS`` name to read the folder as (None: detected)."""

    views: int = 16
    method: str = "uniform"
    bev_dir: Path | None = None
    width_px: int = 2000
    height_px: int = 720
    dpi: int = 100
    frustum_depth_m: float = 0.6
    scene_format: str | None = None

    def __post_init__(self) -> None:
        from ross3d_data.datasets.registry import check_format

        check_format(self.scene_format)
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        if self.method not in VIEW_METHODS:
            raise ValueError(f"method must be one of {VIEW_METHODS}, got {self.method!r}")
        if self.width_px < 200 or self.height_px < 100 or self.dpi < 10:
            raise ValueError("preview needs width_px >= 200, height_px >= 100 and dpi >= 10")
        if not self.frustum_depth_m > 0:
            raise ValueError(f"frustum_depth_m must be > 0, got {self.frustum_depth_m}")


@dataclass
class PreviewData:
    """Everything drawn in a preview (also what the CLI summarises)."""

    scene_id: str
    frame_ids: list[int]
    views: list[PreparedView]
    T_aligned_cam_V44: np.ndarray
    overlap_VV: np.ndarray
    coverage_V: np.ndarray
    bev_HW3: np.ndarray | None
    bev_world_to_pixel_33: np.ndarray | None
    notes: list[str] = field(default_factory=list)


def collect_preview(scene, cfg: PreviewConfig) -> PreviewData:
    """Choose and prepare the views, compute their overlap and fetch the BEV."""
    from ross3d_data.bev.files import load_or_render_bev

    frame_ids = choose_views(scene, cfg.views, cfg.method)
    poses = np.stack([scene.T_aligned_cam(fid) for fid in frame_ids])
    views = []
    for fid, T in zip(frame_ids, poses, strict=True):
        frame = scene.load_frame(fid)
        views.append(
            prepare_view(
                frame.color_HW3,
                frame.depth_mm_HW,
                *scene.frame_intrinsics(fid),
                T,
            )
        )
    overlap, coverage = view_overlap(
        np.stack([depth_mm_to_m(v.depth_mm_SS) for v in views]),
        np.stack([v.K_crop_33 for v in views]),
        poses,
    )
    data = PreviewData(scene.scene_id, frame_ids, views, poses, overlap, coverage, None, None)
    try:
        data.bev_HW3, data.bev_world_to_pixel_33 = load_or_render_bev(scene, cfg.bev_dir)
    except SceneError as exc:
        data.notes.append(f"no BEV ({exc}); cameras drawn on a blank canvas")
    return data


def _frustums_xy(data: PreviewData, depth_m: float) -> np.ndarray:
    """``(V, 5, 2)`` aligned xy of each camera centre and its 4 far corners."""
    side = data.views[0].image_SS3.shape[0]
    return np.stack(
        [
            camera_frustum_corners(v.K_crop_33, side, side, T, depth_m)[:, :2]
            for v, T in zip(data.views, data.T_aligned_cam_V44, strict=True)
        ]
    )


def _blank_canvas(frustums_xy: np.ndarray, size_px: int = 432) -> tuple[np.ndarray, np.ndarray]:
    """A white square covering the frustums (with a 0.5 m margin) and its world_to_pixel."""
    lo, hi = frustums_xy.reshape(-1, 2).min(0) - 0.5, frustums_xy.reshape(-1, 2).max(0) + 0.5
    mpp = float((hi - lo).max()) / size_px
    w2p = np.array([[1 / mpp, 0, -lo[0] / mpp], [0, -1 / mpp, hi[1] / mpp], [0, 0, 1]])
    return np.full((size_px, size_px, 3), 255, np.uint8), w2p


def _draw_thumbnails(fig, cell, data: PreviewData, colors) -> None:
    n = len(data.views)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    sub = cell.subgridspec(rows, cols, wspace=0.05, hspace=0.25)
    for i, view in enumerate(data.views):
        ax = fig.add_subplot(sub[i // cols, i % cols])
        ax.imshow(view.image_SS3)
        ax.set_title(f"{i}: f{data.frame_ids[i]} c{data.coverage_V[i]:.2f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colors[i])
            spine.set_linewidth(2.5)


def _draw_overlap(fig, ax, data: PreviewData) -> None:
    im = ax.imshow(data.overlap_VV, vmin=0.0, vmax=1.0, cmap="magma")
    ax.set_title(f"overlap[i, j] (mean off-diag {_mean_off_diagonal(data.overlap_VV):.2f})")
    ax.set_xlabel("seen by view j")
    ax.set_ylabel("view i")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def _draw_bev(ax, data: PreviewData, cfg: PreviewConfig, colors) -> None:
    frustums = _frustums_xy(data, cfg.frustum_depth_m)
    image, w2p = data.bev_HW3, data.bev_world_to_pixel_33
    if image is None or w2p is None:
        image, w2p = _blank_canvas(frustums)
    ax.imshow(image)
    px = np.c_[frustums.reshape(-1, 2), np.ones(frustums.shape[0] * 5)] @ np.asarray(w2p).T
    px = px[:, :2].reshape(-1, 5, 2)
    for i, f in enumerate(px):
        # far rectangle, then the four edges from the camera centre (seen from above)
        outline = f[[1, 2, 3, 4, 1, 0, 2, 3, 0, 4]]
        ax.plot(outline[:, 0], outline[:, 1], color=colors[i], linewidth=1.0)
        ax.plot(*f[0], "o", color=colors[i], markersize=4, markeredgecolor="white")
        ax.annotate(str(i), f[0], fontsize=8, color=colors[i], xytext=(3, 3), weight="bold",
                    textcoords="offset points")  # fmt: skip
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    ax.set_title("BEV with cameras" + (" (no BEV: blank canvas)" if data.notes else ""))
    ax.set_xticks([])
    ax.set_yticks([])


def _mean_off_diagonal(overlap_VV: np.ndarray) -> float:
    n = len(overlap_VV)
    if n < 2:
        return 0.0
    return float((overlap_VV.sum() - np.trace(overlap_VV)) / (n * (n - 1)))


def draw_preview(data: PreviewData, cfg: PreviewConfig, out_png: Path) -> Path:
    """Render ``data`` into ``out_png`` (exactly ``cfg.width_px x cfg.height_px``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("turbo")(np.linspace(0.05, 0.95, len(data.views)))
    fig = plt.figure(figsize=(cfg.width_px / cfg.dpi, cfg.height_px / cfg.dpi), dpi=cfg.dpi)
    try:
        fig.subplots_adjust(left=0.02, right=0.98, top=0.88, bottom=0.08)
        grid = fig.add_gridspec(1, 3, width_ratios=[1.15, 1.0, 1.0], wspace=0.12)
        _draw_thumbnails(fig, grid[0], data, colors)
        _draw_overlap(fig, fig.add_subplot(grid[1]), data)
        _draw_bev(fig.add_subplot(grid[2]), data, cfg, colors)
        fig.suptitle(f"{data.scene_id}: {len(data.views)} views ({cfg.method})", fontsize=12)
        out_png = Path(out_png)
        out_png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=cfg.dpi)
    finally:
        plt.close(fig)
    return out_png


def write_preview(scene_dir: Path, out_png: Path, cfg: PreviewConfig) -> PreviewData:
    """Load ``scene_dir``, collect its views and write the preview PNG; returns what was drawn."""
    from ross3d_data.datasets import load_scene

    data = collect_preview(load_scene(Path(scene_dir), fmt=cfg.scene_format), cfg)
    draw_preview(data, cfg, out_png)
    return data
