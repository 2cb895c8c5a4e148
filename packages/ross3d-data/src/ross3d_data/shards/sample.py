"""One scene clip as a WebDataset sample: preparation, encoding to members, decoding.

Members of a sample with key ``<scene_id>`` (so ``<scene_id>.<name>`` in the tar):

* ``NNN.jpg`` (view NNN, RGB JPEG of the 384x384 crop, fixed quality) and ``NNN.depth.png``
  (16-bit PNG, millimetres, 0 = invalid), NNN = 000 ... V-1;
* ``frame_ids.npy`` int64 [V], ``k_crop.npy`` float32 [V,3,3], ``t_aligned_cam.npy`` float32
  [V,4,4], ``coords.npy`` float32 [V,G,G,3], ``coords_valid.npy`` bool [V,G,G],
  ``overlap.npy`` float32 [V,V], ``coverage.npy`` float32 [V];
* ``bev.png`` (RGB) and ``bev_world_to_pixel.npy`` float32 [3,3];
* ``boxes.npy`` float32 [K,6], ``object_ids.npy`` int64 [K];
* ``meta.json``: scene_id, labels (K), views, view method, skipped frame counts.

Member names are lower case (webdataset lower-cases suffixes when it groups members).
Every encoding is deterministic (``np.save`` bytes, fixed JPEG quality / PNG level, sorted JSON).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.views.coords import PreparedView, prepare_view
from ross3d_data.views.overlap import view_overlap
from ross3d_data.views.selection import choose_views

JPEG_QUALITY = 95
PNG_LEVEL = 3
ARRAY_NAMES = (
    "frame_ids",
    "K_crop",
    "T_aligned_cam",
    "coords",
    "coords_valid",
    "overlap",
    "coverage",
    "bev_world_to_pixel",
    "boxes",
    "object_ids",
)


@dataclass(frozen=True)
class SampleConfig:
    """How a clip is made: view count/method, image side, 3D token crop/grid."""

    views: int = 32
    method: str = "uniform"
    size: int = 384
    crop: int = 378
    grid: int = 14
    # whose aspect sets the colour resize: "color" (ours) or "depth" (the public rule,
    # views.coords); the model config's vision.resize_aspect must match (shard_layout)
    resize_aspect: str = "color"

    def __post_init__(self) -> None:
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        if self.method not in ("uniform", "max-coverage"):
            raise ValueError(f"unknown view method {self.method!r}")
        if not 0 < self.crop <= self.size or self.crop % self.grid:
            raise ValueError(f"bad size/crop/grid {self.size}/{self.crop}/{self.grid}")
        if self.resize_aspect not in ("color", "depth"):
            raise ValueError(f"resize_aspect must be color or depth, got {self.resize_aspect!r}")


@dataclass
class Clip:
    """Everything stored for one clip, as numpy arrays (the loader turns them into tensors)."""

    scene_id: str
    images_VSS3: np.ndarray
    depth_mm_VSS: np.ndarray
    arrays: dict[str, np.ndarray]
    bev_HW3: np.ndarray
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def _load_good_view(
    scene, fid: int, cfg: SampleConfig, bad: Counter
) -> tuple[PreparedView, np.ndarray] | None:
    """Prepared view and T_aligned_cam of a frame; None (reason counted in ``bad``) if bad."""
    try:
        frame = scene.load_frame(fid)
    except (SceneError, OSError, ValueError):
        bad["unreadable frame"] += 1
        return None
    try:
        T = scene.T_aligned_cam(fid)
    except SceneError:
        bad["invalid pose"] += 1
        return None
    if not np.isfinite(frame.T_world_cam).all() or not np.isfinite(T).all():
        bad["invalid pose"] += 1
        return None
    if not np.any(frame.depth_mm_HW):
        bad["empty depth"] += 1
        return None
    color_K, depth_K = scene.frame_intrinsics(fid)
    view = prepare_view(
        frame.color_HW3,
        frame.depth_mm_HW,
        color_K,
        depth_K,
        T,
        cfg.size,
        cfg.crop,
        cfg.grid,
        cfg.resize_aspect,
    )
    return view, T


def _replacement(candidates: list[int], fid: int, avoid: set[int]) -> list[int]:
    """Other frame ids ordered by distance (in frame order) from ``fid``, unused ones first."""
    pos = candidates.index(fid)
    order = sorted(range(len(candidates)), key=lambda i: (abs(i - pos), i))
    ids = [candidates[i] for i in order if candidates[i] != fid]
    return [i for i in ids if i not in avoid] + [i for i in ids if i in avoid]


def load_views(
    scene, cfg: SampleConfig, bad: Counter
) -> tuple[list[int], list[tuple[PreparedView, np.ndarray]]]:
    """Chosen views; a bad frame is replaced by its nearest good neighbour in frame order."""
    candidates = scene.frame_ids()
    if not candidates:
        raise SceneError(scene.root, "scene has no valid frames")
    chosen = choose_views(scene, cfg.views, cfg.method)
    known_bad: set[int] = set()
    cache: dict[int, tuple[PreparedView, np.ndarray]] = {}
    ids, views = [], []
    for fid in chosen:
        for cand in [fid, *_replacement(candidates, fid, set(ids))]:
            if cand in known_bad:
                continue
            if cand not in cache:
                view = _load_good_view(scene, cand, cfg, bad)
                if view is None:
                    known_bad.add(cand)
                    continue
                cache[cand] = view
            ids.append(cand)
            views.append(cache[cand])
            break
        else:
            raise SceneError(scene.root, "no frame with a valid pose and depth")
    return ids, views


def prepare_clip(
    scene_dir: Path,
    cfg: SampleConfig,
    bev_dir: Path | None,
    frames_dir: Path | None = None,
    fmt: str | None = None,
) -> Clip:
    """Load a scene, choose and prepare its views, compute overlaps, attach BEV and boxes.

    ``frames_dir``: exported posed frames kept apart from the scan (``load_scene``'s argument);
    ``fmt``: a ``datasets.FORMATS`` name to force (None: detected from the folder).
    """
    from ross3d_data.bev.files import load_or_render_bev
    from ross3d_data.datasets import load_scene

    scene = load_scene(Path(scene_dir), frames_dir, fmt)
    bad: Counter = Counter()
    if scene.skipped_frame_ids():
        bad["invalid pose"] += len(scene.skipped_frame_ids())
    ids, loaded = load_views(scene, cfg, bad)
    views = [v for v, _ in loaded]
    K = np.stack([v.K_crop_33 for v in views])
    T = np.stack([t for _, t in loaded])
    depth = np.stack([v.depth_mm_SS for v in views])
    overlap, coverage = view_overlap(depth.astype(np.float64) / 1000.0, K, T)
    bev_HW3, world_to_pixel = load_or_render_bev(scene, bev_dir)
    objects = sorted(scene.objects, key=lambda o: o.object_id)
    arrays = {
        "frame_ids": np.asarray(ids, np.int64),
        "K_crop": K.astype(np.float32),
        "T_aligned_cam": T.astype(np.float32),
        "coords": np.stack([v.coords_GG3 for v in views]).astype(np.float32),
        "coords_valid": np.stack([v.coords_valid_GG for v in views]).astype(bool),
        "overlap": overlap.astype(np.float32),
        "coverage": coverage.astype(np.float32),
        "bev_world_to_pixel": np.asarray(world_to_pixel, np.float32),
        "boxes": np.asarray([o.box_6 for o in objects], np.float32).reshape(-1, 6),
        "object_ids": np.asarray([o.object_id for o in objects], np.int64),
    }
    meta = {
        "scene_id": scene.scene_id,
        "views": cfg.views,
        "method": cfg.method,
        "skipped_frames": dict(sorted(bad.items())),
    }
    return Clip(
        scene.scene_id,
        np.stack([v.image_SS3 for v in views]),
        depth,
        arrays,
        np.asarray(bev_HW3, np.uint8),
        [o.label for o in objects],
        meta,
    )


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _encode_image(ext: str, image: np.ndarray, params: list[int]) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"could not encode a {image.shape} {image.dtype} image as {ext}")
    return buf.tobytes()


def encode_clip(clip: Clip) -> list[tuple[str, bytes]]:
    """``(member name, bytes)`` in a fixed order (key not included)."""
    jpg = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    png = [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL]
    members = []
    for i, (img, dep) in enumerate(zip(clip.images_VSS3, clip.depth_mm_VSS, strict=True)):
        members.append((f"{i:03d}.jpg", _encode_image(".jpg", img, jpg)))
        members.append((f"{i:03d}.depth.png", _encode_image(".png", dep.astype(np.uint16), png)))
    members += [(f"{name.lower()}.npy", _npy(clip.arrays[name])) for name in ARRAY_NAMES]
    members.append(("bev.png", _encode_image(".png", clip.bev_HW3, png)))
    meta = {**clip.meta, "labels": clip.labels}
    members.append(("meta.json", json.dumps(meta, sort_keys=True).encode()))
    return members


def _decode_image(data: bytes, name: str, color: bool) -> np.ndarray:
    flag = cv2.IMREAD_COLOR_RGB if color else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise ValueError(f"member {name}: not a decodable image")
    return img


def _decode_stack(sample: dict[str, Any], n: int, suffix: str, color: bool) -> np.ndarray:
    """Decode members ``000<suffix>`` ... into one preallocated array (no extra stack copy)."""
    first = _decode_image(sample[f"000{suffix}"], f"000{suffix}", color)
    out = np.empty((n, *first.shape), first.dtype)
    out[0] = first
    for i in range(1, n):
        img = _decode_image(sample[f"{i:03d}{suffix}"], f"{i:03d}{suffix}", color)
        if img.shape != first.shape or img.dtype != first.dtype:
            raise ValueError(f"member {i:03d}{suffix}: {img.shape} {img.dtype} differs from view 0")
        out[i] = img
    return out


def decode_clip(sample: dict[str, Any]) -> Clip:
    """Inverse of :func:`encode_clip` for a WebDataset sample dict (member name -> bytes)."""
    meta = json.loads(sample["meta.json"])
    n = int(meta["views"])
    images = _decode_stack(sample, n, ".jpg", True)
    depth = _decode_stack(sample, n, ".depth.png", False)
    arrays = {
        name: np.load(io.BytesIO(sample[f"{name.lower()}.npy"]), allow_pickle=False)
        for name in ARRAY_NAMES
    }
    bev = _decode_image(sample["bev.png"], "bev.png", True)
    labels = meta.pop("labels")
    return Clip(meta["scene_id"], images, depth, arrays, bev, labels, meta)
