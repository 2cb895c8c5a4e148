"""BEV for a shard sample: read it from ``bev_dir`` or render it.

``bev_dir/<scene_id>/`` holds either our render (``bev.png`` + ``bev.json``, written by
``ross3d-data render-bev``: the square full-extent top view with its world_to_pixel) or Ross3D's
released render (``view_0.jpg``: the ``scans/<scene>/view_0.jpg`` files of Hugging Face
``HaochenWang/ross3d-utils``, linked from the Ross3D README; pass that ``scans`` folder as
``bev_dir``). A released image is decoded with PIL as the public ``video_utils.py`` ~322-323
does (``Image.open(...).convert("RGB")``) and kept at its own size: the public resize to
``int(640 * 432 / 480)`` x 432 and centre crop to 432 (``video_utils.py`` ~327-343) is the model
config's ``vae.bev_resize = "crop-4:3"``. Its world_to_pixel is unknown (NaN): the public code
ships no rendering parameters, and nothing in training reads it.
"""

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


RELEASED_BEV = "view_0.jpg"  # Ross3D's released BEV render of a scene


def read_released_bev(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(image_HW3 uint8 RGB, NaN world_to_pixel_33)`` of a released ``view_0.jpg``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            image = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise SceneError(path, f"unreadable released BEV image ({e})") from e
    return image, np.full((3, 3), np.nan)


def load_or_render_bev(scene, bev_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The scene's BEV from ``bev_dir`` when it is there (our ``bev.png`` first, else a released
    ``view_0.jpg``), else rendered with the default config."""
    folder = None if bev_dir is None else Path(bev_dir) / scene.scene_id
    if folder is not None and (folder / "bev.png").is_file():
        return read_bev(folder)
    if folder is not None and (folder / RELEASED_BEV).is_file():
        return read_released_bev(folder / RELEASED_BEV)
    from ross3d_data.bev.grid import BevConfig
    from ross3d_data.bev.render import render_bev

    result = render_bev(scene, BevConfig())
    return result.image_HW3, result.world_to_pixel_33
