"""BEV for a shard sample: read ``<bev_dir>/<scene_id>/bev.{png,json}`` or render it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ross3d_data.core.errors import SceneError


def read_bev(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(image_HW3 uint8 RGB, world_to_pixel_33 float64)`` from a folder written by write_bev."""
    png, meta = Path(folder) / "bev.png", Path(folder) / "bev.json"
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if image is None:
        raise SceneError(png, "missing or unreadable BEV image")
    try:
        w2p = np.asarray(json.loads(meta.read_text())["world_to_pixel"], np.float64).reshape(3, 3)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise SceneError(meta, f"missing or bad BEV metadata ({e})") from e
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), w2p


def load_or_render_bev(scene, bev_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The scene's BEV from ``bev_dir`` when it is there, else rendered with the default config."""
    if bev_dir is not None and (Path(bev_dir) / scene.scene_id / "bev.png").is_file():
        return read_bev(Path(bev_dir) / scene.scene_id)
    from ross3d_data.bev.grid import BevConfig
    from ross3d_data.bev.render import render_bev

    result = render_bev(scene, BevConfig())
    return result.image_HW3, result.world_to_pixel_33
