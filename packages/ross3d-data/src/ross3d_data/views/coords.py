"""Per-view model inputs: the 384x384 image, its depth, its intrinsics and 3D token positions.

The recipe is Video-3D-LLM's (``VideoProcessor.preprocess`` + ``average_coordinate_in_patch``),
which Ross3D uses unchanged:

1. the colour image is resized to height ``size`` keeping its aspect (width ``int(W * size / H)``,
   bicubic as PIL's default), then centre-cropped to ``size x size``. ``resize_aspect="depth"``
   is the public rule: W and H are the *depth map's* (``video_utils.py`` ~286-287 and ~314-317:
   ``new_width = int(W * (crop_size / H))`` with ``V, H, W, _ = world_coords.shape``), so a
   ScanNet 1296x968 colour frame becomes 512x384 (the depth's 4:3, a 0.4 % horizontal squeeze)
   instead of ``"color"``'s 514x384; the crop intrinsics follow either way;
2. depth is resampled (nearest) onto exactly those crop pixels. The reference resizes the depth
   map with the same pixel counts as the image, which is only right when colour and depth share
   their field of view; here every crop pixel's ray (through the crop intrinsics) is looked up
   in the depth image through the depth intrinsics (colour and depth are registered: same pose),
   which reduces to that resize when the two intrinsics are proportional (ScanNet, TUM);
3. token cells: the top-left ``crop x crop`` pixels (378 = 27 SigLIP patches of 14 px: the
   pixels the patch grid actually covers, the reference's ``[:-6, :-6]``) split into
   ``grid x grid`` cells (27x27 px); each cell's aligned xyz is the mean over its pixels with
   valid depth. The reference averages invalid pixels too (they back-project to the camera
   centre); here they are excluded and a cell without any valid pixel is marked invalid (its
   coordinates are 0). Values are not clamped or quantised (the model does that).
4. the reference's rule (the model's ``position.invalid_depth = "camera-centre"``) is
   :func:`camera_centre_fill` applied to those cell means and the view's depth.

This module holds the project's only definition of token coordinates, both rules: the shards
store step 3's cells (data preparation runs without torch), and the model's collate
(``ross3d_model.inputs.batch``, on the CPU, once per example) calls :func:`camera_centre_fill`
on numpy arrays instead of keeping a torch copy of the cell averaging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ross3d_data.core.geometry import (
    check_pose,
    depth_mm_to_m,
    resize_crop_intrinsics,
    transform_points,
)

if TYPE_CHECKING:
    from ross3d_data.core.records import Intrinsics


@dataclass(frozen=True)
class PreparedView:
    """One view as the model sees it (S = image side, G = token grid)."""

    image_SS3: np.ndarray  # uint8 RGB
    depth_mm_SS: np.ndarray  # uint16 millimetres on the image's pixels, 0 = invalid
    K_crop_33: np.ndarray  # float64 intrinsics of image_SS3 / depth_mm_SS
    coords_GG3: np.ndarray  # float32 aligned xyz per token cell (0 where invalid)
    coords_valid_GG: np.ndarray  # bool: cell had at least one valid depth pixel


def _check_grid(size: int, crop: int, grid: int) -> None:
    if not 0 < crop <= size or grid < 1 or crop % grid:
        raise ValueError(
            f"need 0 < crop <= size and crop divisible by grid; got size={size}, crop={crop}, "
            f"grid={grid}"
        )


RESIZE_ASPECTS = ("color", "depth")  # whose width/height sets the resize (module docstring)


def resize_center_crop(
    color_HW3: np.ndarray, size: int, aspect_wh: tuple[int, int] | None = None
) -> tuple[np.ndarray, float, float, int, int]:
    """Resize to height ``size`` keeping the aspect, centre-crop ``size x size``.

    A portrait image (upright hand-held frames: 3RScan, ARKitScenes) gets the same rule with the
    axes swapped: width ``size``, height ``int(H * size / W)``, rows cropped about the centre.
    ``aspect_wh``: take W and H from this size instead of the image's (the public code uses the
    depth map's). Returns ``(image_SS3, scale_x, scale_y, left, top)``.
    """
    height, width = color_HW3.shape[:2]
    aspect_w, aspect_h = (width, height) if aspect_wh is None else aspect_wh
    if aspect_w >= aspect_h:
        new_width, new_height = int(aspect_w * size / aspect_h), size
    else:
        new_width, new_height = size, int(aspect_h * size / aspect_w)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    scale_x, scale_y = new_width / width, new_height / height
    # Resize only the source box that lands in the crop: the same pixels as resize-then-crop.
    if aspect_w >= aspect_h:
        box = (left / scale_x, 0.0, (left + size) / scale_x, float(height))
    else:
        box = (0.0, top / scale_y, float(width), (top + size) / scale_y)
    image = Image.fromarray(color_HW3).resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(image), scale_x, scale_y, left, top


def resample_depth(
    depth_mm_HW: np.ndarray, K_depth_33: np.ndarray, K_target_33: np.ndarray, size: int
) -> np.ndarray:
    """Nearest-neighbour depth on a ``size x size`` target image of the same (registered) camera.

    Target pixel ``(u, v)`` reads depth pixel ``round(K_depth K_target^-1 [u, v, 1])``; pixels
    falling outside the depth image get 0. Both intrinsics must have zero skew.
    """
    Kd = np.asarray(K_depth_33, dtype=np.float64)
    Kt = np.asarray(K_target_33, dtype=np.float64)
    if Kd[0, 1] != 0 or Kt[0, 1] != 0:
        raise ValueError("resample_depth needs zero-skew intrinsics")
    target = np.arange(size, dtype=np.float64)
    cols = np.rint(Kd[0, 0] * (target - Kt[0, 2]) / Kt[0, 0] + Kd[0, 2]).astype(np.intp)
    rows = np.rint(Kd[1, 1] * (target - Kt[1, 2]) / Kt[1, 1] + Kd[1, 2]).astype(np.intp)
    height, width = depth_mm_HW.shape
    col_ok = (cols >= 0) & (cols < width)
    row_ok = (rows >= 0) & (rows < height)
    out = depth_mm_HW[np.clip(rows, 0, height - 1)][:, np.clip(cols, 0, width - 1)]
    out = np.where(row_ok[:, None] & col_ok[None, :], out, 0)
    return out.astype(np.uint16)


def token_coordinates(
    depth_mm_SS: np.ndarray,
    K_crop_33: np.ndarray,
    T_aligned_cam_44: np.ndarray,
    crop: int = 378,
    grid: int = 14,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned xyz per token cell: ``(coords_GG3 float32, valid_GG bool)``.

    Cells are ``crop // grid`` px squares tiling the top-left ``crop x crop`` pixels; each holds
    the mean of its valid pixels' back-projected points (0 and invalid when it has none).
    """
    height, width = depth_mm_SS.shape
    _check_grid(min(height, width), crop, grid)
    T_aligned_cam_44 = check_pose(T_aligned_cam_44, "T_aligned_cam")
    cell = crop // grid
    depth_m = depth_mm_to_m(depth_mm_SS[:crop, :crop]).astype(np.float64)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    z = np.where(valid, depth_m, 0.0)
    pixel = np.arange(crop, dtype=np.float64)

    # Back-projection is linear in (u z, v z, z): the mean point of a cell is K^-1 applied to the
    # cell means of those, then the pose, which is far cheaper than back-projecting every pixel.
    def cell_sums(values_SS: np.ndarray) -> np.ndarray:
        return values_SS.reshape(grid, cell, grid, cell).sum(axis=(1, 3))

    counts = cell_sums(valid)
    homog_sums = np.stack(
        [cell_sums(z * pixel[None, :]), cell_sums(z * pixel[:, None]), cell_sums(z)], axis=-1
    )
    mean_homog = homog_sums / np.maximum(counts, 1)[..., None]
    points_cam = mean_homog @ np.linalg.inv(np.asarray(K_crop_33, dtype=np.float64)).T
    coords = np.where((counts > 0)[..., None], transform_points(T_aligned_cam_44, points_cam), 0.0)
    return coords.astype(np.float32), counts > 0


def camera_centre_fill(
    coords_VGG3: np.ndarray, depth_mm_VSS: np.ndarray, T_aligned_cam_V44: np.ndarray, crop: int
) -> np.ndarray:
    """Cell xyz as the public code averages it (``ross3d_arch.py`` ~341-351, ``video_utils.py``
    ~39-69): the mean over *all* ``crop x crop`` pixels of a cell, an invalid-depth pixel
    unprojecting to the camera centre, from the valid-pixel means of :func:`token_coordinates`.

    Back-projection is affine, so that mean is the valid mean weighted by the cell's valid share
    plus the camera centre weighted by the rest; a cell without valid depth becomes the camera
    centre. Float32 arithmetic, any leading dims (one per view); returns float32 [..., G, G, 3].
    """
    coords = np.asarray(coords_VGG3, dtype=np.float32)
    depth = np.asarray(depth_mm_VSS)
    T = np.asarray(T_aligned_cam_V44, dtype=np.float32)
    g = coords.shape[-2]
    if crop % g or min(depth.shape[-2:]) < crop or coords.shape[-3:] != (g, g, 3):
        raise ValueError(
            f"need coords (..., G, G, 3) with crop {crop} a multiple of G and depth of at least "
            f"crop x crop pixels; got coords {coords.shape}, depth {depth.shape}"
        )
    cell = crop // g
    lead = depth.shape[:-2]
    cells = (depth[..., :crop, :crop] > 0).reshape(*lead, g, cell, g, cell)
    count = cells.sum(axis=(-3, -1), dtype=np.int64).astype(np.float32)
    share = (count / np.float32(cell * cell))[..., None]  # [..., G, G, 1]
    centre = T[..., None, None, :3, 3]
    return share * coords + (np.float32(1.0) - share) * centre


def prepare_view(
    color_HW3: np.ndarray,
    depth_mm_HW: np.ndarray,
    color_K: Intrinsics,
    depth_K: Intrinsics,
    T_aligned_cam_44: np.ndarray,
    size: int = 384,
    crop: int = 378,
    grid: int = 14,
    resize_aspect: str = "color",
) -> PreparedView:
    """Image, depth, intrinsics and token coordinates of one frame (see the module docstring)."""
    _check_grid(size, crop, grid)
    if resize_aspect not in RESIZE_ASPECTS:
        raise ValueError(f"resize_aspect must be one of {RESIZE_ASPECTS}, got {resize_aspect!r}")
    if color_HW3.shape != (color_K.height, color_K.width, 3):
        raise ValueError(
            f"colour image {color_HW3.shape} does not match colour intrinsics "
            f"{color_K.width}x{color_K.height}"
        )
    if depth_mm_HW.shape != (depth_K.height, depth_K.width):
        raise ValueError(
            f"depth image {depth_mm_HW.shape} does not match depth intrinsics "
            f"{depth_K.width}x{depth_K.height}"
        )
    aspect = (depth_K.width, depth_K.height) if resize_aspect == "depth" else None
    image, scale_x, scale_y, left, top = resize_center_crop(
        np.asarray(color_HW3, np.uint8), size, aspect
    )
    K_crop = resize_crop_intrinsics(color_K.K_33, scale_x, scale_y, left=left, top=top)
    depth = resample_depth(np.asarray(depth_mm_HW), depth_K.K_33, K_crop, size)
    coords, valid = token_coordinates(depth, K_crop, T_aligned_cam_44, crop, grid)
    return PreparedView(image, depth, K_crop, coords, valid)
