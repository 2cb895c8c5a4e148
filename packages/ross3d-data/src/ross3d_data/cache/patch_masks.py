"""Grounding patch masks per clip (numpy, torch-free) and their per-clip cache.

A grounding candidate's object feature averages the SigLIP patches (27x27 grid of 14x14-pixel
patches of the top-left 378x378 of the 384 crop) that have at least ``min_inside_fraction`` of
their pixels, with valid depth, inside the candidate's axis-aligned box (REFERENCE section 2).
Training candidates are the clip's GT boxes, so the masks depend only on the clip: they are
computed once per clip by ``ross3d-data cache-clips`` (kind ``patch_masks`` of
``ross3d_data.cache.store``) instead of once per instruction.

:func:`patches_in_boxes` is the project's only definition of the mask rule. It is needed
without torch (``cache-clips``), and the model needs it only on the CPU, in the collate
(``ross3d_model.inputs.batch``, when a clip has no cached masks), so the model calls this
function on numpy arrays instead of keeping a torch copy (which was also ~20x slower there).
Pixels are back-projected by ``core.geometry.backproject_pixels`` in float32 (the public code's
arithmetic). Per box, the patches whose bounding box of counted points misses the box are
skipped (exact: no pixel of such a patch can be inside).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ross3d_data.cache.store import (
    ClipCacheReader,
    cache_path,
    fingerprint,
    shard_source_digest,
    write_cache,
)
from ross3d_data.core.engines import (
    Engine,
    EngineConfig,
    TaskResources,
    check_engine,
    in_order,
    run_units,
)
from ross3d_data.core.geometry import backproject_pixels, depth_mm_to_m

KIND = "patch_masks"
MASK_TASK = TaskResources(cpus=1.0, memory_gib=1.0)  # one decoded clip
INPUT_NAMES = ("depth_mm", "K_crop", "T_aligned_cam", "boxes")
PATCH_DEPTH_RULES = ("any", "valid")


def _check_fraction(min_inside_fraction: float) -> None:
    """(0, 1] as the model's grounding config: with 0 a patch without any pixel in the box
    would belong to it."""
    if not 0.0 < min_inside_fraction <= 1.0:
        raise ValueError(f"min_inside_fraction must be in (0, 1], got {min_inside_fraction}")


@dataclass(frozen=True)
class PatchMaskParams:
    """The config values a patch mask depends on (model: vision.grid, vision.patch_size,
    grounding.min_inside_fraction, grounding.patch_depth; defaults are the 7b values).
    ``patch_depth`` "valid": only pixels with depth count; "any" (the public code): every pixel
    counts, an invalid one unprojects to the camera centre."""

    grid: int = 27
    patch_px: int = 14
    min_inside_fraction: float = 0.5
    patch_depth: str = "any"

    def __post_init__(self) -> None:
        if self.grid < 1 or self.patch_px < 1:
            raise ValueError(f"grid and patch_px must be >= 1, got {self.grid}, {self.patch_px}")
        _check_fraction(self.min_inside_fraction)
        if self.patch_depth not in PATCH_DEPTH_RULES:
            raise ValueError(
                f"patch_depth must be one of {PATCH_DEPTH_RULES}, got {self.patch_depth!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def rebuild_hint(self, shard_dir: str | Path) -> str:
        return (
            f"rebuild it with `ross3d-data cache-clips --shards {shard_dir} --grid {self.grid} "
            f"--patch-px {self.patch_px} --min-inside-fraction {self.min_inside_fraction} "
            f"--patch-depth {self.patch_depth}`"
        )


def _patches(a_VHW: np.ndarray, grid: int, p: int) -> np.ndarray:
    """[..., V, g*p, g*p] -> contiguous [..., V, g, g, p*p] (patch row, patch col, its pixels)."""
    lead = a_VHW.shape[:-2]
    a = a_VHW.reshape(*lead, grid, p, grid, p).swapaxes(-3, -2)
    return np.ascontiguousarray(a).reshape(*lead, grid, grid, p * p)


def patches_in_boxes(
    depth_mm_VHW: np.ndarray,
    K_crop_V33: np.ndarray,
    T_aligned_cam_V44: np.ndarray,
    boxes_K6: np.ndarray,
    grid: int,
    patch_px: int,
    min_inside_fraction: float,
    patch_depth: str = "valid",
) -> np.ndarray:
    """bool [K, V, grid, grid]: the patch has at least ``min_inside_fraction`` of its pixels
    inside the box (faces included); ``patch_depth`` as in :class:`PatchMaskParams`. Depth in
    millimetres (0 = no depth), at least ``grid * patch_px`` pixels on each side."""
    if patch_depth not in PATCH_DEPTH_RULES:
        raise ValueError(f"patch_depth must be one of {PATCH_DEPTH_RULES}, got {patch_depth!r}")
    _check_fraction(min_inside_fraction)
    side = grid * patch_px
    depth = np.asarray(depth_mm_VHW)
    if depth.ndim != 3 or min(depth.shape[1:]) < side:
        raise ValueError(f"depth must be (V, H, W) with H, W >= {side}, got {depth.shape}")
    depth = depth[:, :side, :side]
    xyz = backproject_pixels(depth_mm_to_m(depth), K_crop_V33, T_aligned_cam_V44)
    pts = _patches(np.moveaxis(xyz, -1, 0), grid, patch_px)  # [3, V, g, g, P]
    valid = _patches(depth > 0, grid, patch_px) if patch_depth == "valid" else None
    lo_pt, hi_pt = _patch_bounds(pts, valid)  # [3, V, g, g]
    boxes = np.asarray(boxes_K6, np.float32).reshape(-1, 6)
    lo = boxes[:, :3] - boxes[:, 3:] / np.float32(2)
    hi = boxes[:, :3] + boxes[:, 3:] / np.float32(2)
    need = min_inside_fraction * patch_px * patch_px
    out = np.zeros((len(boxes), depth.shape[0], grid, grid), dtype=bool)
    for k in range(len(boxes)):
        touch = np.ones(lo_pt.shape[1:], bool)
        for a in range(3):
            touch &= (hi_pt[a] >= lo[k, a]) & (lo_pt[a] <= hi[k, a])
        cand = np.nonzero(touch)  # patches whose valid points' bounds meet box k
        if not len(cand[0]):
            continue
        inside = np.ones((len(cand[0]), pts.shape[-1]), bool) if valid is None else valid[cand]
        for a in range(3):
            p_a = pts[a][cand]
            inside &= (p_a >= lo[k, a]) & (p_a <= hi[k, a])
        out[k][cand] = inside.sum(-1) >= need
    return out


def _patch_bounds(pts_3VggP: np.ndarray, valid_VggP: np.ndarray | None):
    """Per-patch min and max of the points that count (invalid ones excluded)."""
    if valid_VggP is None:
        return pts_3VggP.min(-1), pts_3VggP.max(-1)
    big = np.float32(np.inf)
    return (np.where(valid_VggP, pts_3VggP, big).min(-1),
            np.where(valid_VggP, pts_3VggP, -big).max(-1))  # fmt: skip


def mask_inputs(clip_arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a clip's patch masks are computed from (and fingerprinted by)."""
    return {name: np.asarray(clip_arrays[name]) for name in INPUT_NAMES}


def clip_masks(inputs: Mapping[str, np.ndarray], params: PatchMaskParams) -> np.ndarray:
    return patches_in_boxes(
        inputs["depth_mm"], inputs["K_crop"], inputs["T_aligned_cam"], inputs["boxes"],
        params.grid, params.patch_px, params.min_inside_fraction, params.patch_depth,
    )  # fmt: skip


def clip_arrays(clip) -> dict[str, np.ndarray]:
    """A decoded ``shard_sample.Clip`` as the flat arrays of the loader contract's names."""
    return {**clip.arrays, "depth_mm": clip.depth_mm_VSS, "bev": clip.bev_HW3}


_READERS: dict[str, object] = {}  # one ShardReader per folder per process (pool workers)


def _clip_entry(job: tuple[str, str, PatchMaskParams]):
    """(key, fingerprint, {"in_box": masks}) of one clip; runs in the caller or a worker."""
    from ross3d_data.shards.reader import ShardReader

    folder, key, params = job
    if folder not in _READERS:
        _READERS[folder] = ShardReader(folder, cache_clips=0)
    inputs = mask_inputs(clip_arrays(_READERS[folder].clip(key)))
    return key, fingerprint(KIND, params.to_dict(), inputs), {"in_box": clip_masks(inputs, params)}


def _shard_source(shard_dir: str | Path) -> tuple[str, list[str]]:
    """(source digest, clip keys in shard order) of a shard build, from one manifest read."""
    from ross3d_data.shards.build import read_manifest

    manifest = read_manifest(Path(shard_dir))
    return shard_source_digest(manifest), [k for s in manifest["shards"] for k in s["keys"]]


def shard_keys(shard_dir: str | Path) -> list[str]:
    return _shard_source(shard_dir)[1]


def cache_patch_masks(
    shard_dir: str | Path,
    params: PatchMaskParams,
    progress=None,
    workers: int = 1,
    engine: Engine = "local",
    ray_address: str | None = None,
) -> Path:
    """Compute every clip's masks and write ``<shard_dir>/clip-cache/patch_masks.h5``.

    ``workers`` clips at a time on ``engine`` (``core.engines``: ``local`` processes or
    ``ray`` tasks; the file is written in clip order, so it is the same whatever the engine).
    ``progress`` (optional) is called with each clip key as it is written. A clip that fails
    stops the command (ValueError naming it): the cache must hold every clip.
    """
    check_engine(engine, ray_address)
    cfg = EngineConfig(engine, workers, ray_address, MASK_TASK)
    source, keys = _shard_source(shard_dir)
    jobs = [(k, (str(shard_dir), key, params)) for k, key in enumerate(keys)]

    def entries():
        outcomes = run_units(_clip_entry, jobs, cfg)
        try:
            for key, outcome in zip(keys, in_order(outcomes, len(keys)), strict=True):
                if not outcome.ok:
                    raise ValueError(f"{shard_dir}: clip {key}: {outcome.value}")
                yield outcome.value
                if progress is not None:
                    progress(key)
        finally:
            outcomes.close()  # stops the engine's workers when writing stopped early

    path = cache_path(shard_dir, KIND)
    write_cache(path, KIND, params.to_dict(), source, entries())
    return path


def open_patch_masks(shard_dir: str | Path, params: PatchMaskParams) -> ClipCacheReader:
    """Reader of a shard folder's mask cache; StaleCacheError (with the command that rebuilds
    it) when it is missing, built for other params or another shard build."""
    source, keys = _shard_source(shard_dir)
    return ClipCacheReader(
        cache_path(shard_dir, KIND), KIND, params.to_dict(), source, keys,
        params.rebuild_hint(shard_dir),
    )  # fmt: skip


def read_masks(reader: ClipCacheReader, key: str, clip_arrays: Mapping[str, np.ndarray]):
    """bool [K, V, g, g] masks of clip ``key`` (checked against the clip's inputs)."""
    return reader.read(key, mask_inputs(clip_arrays))["in_box"]
