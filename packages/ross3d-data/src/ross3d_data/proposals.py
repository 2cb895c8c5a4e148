"""Mask3D proposal boxes as Ross3D evaluates with them, from LEO's released mask files.

The published rule (Haochen-Wang409/ross3d `scripts/3d/preprocessing/extract_pred_box.py`):
LEO's `mask/<scene>.mask.npz` is a scipy sparse matrix [masks x points] (`sparse.load_npz`,
line 30); only its first 50 rows are used (`[:50, :]`, line 30); a proposal is the points
whose mask entry equals 1 (`pcds[mask == 1, :]`, line 34); its box is the axis-aligned min/max
box of those points (`utils_3d.convert_pc_to_box`: centre = (min + max) / 2, size = max - min,
in float64 from the float32 points), written as `{"scannet/<scene>": [[cx, cy, cz, dx, dy,
dz], ...]}` (lines 86-89, 97-100). A scene whose masks fail (an empty mask among the first 50
makes `np.min` raise) is left out of the file (the try/except, lines 76-93).

Points: the columns of LEO's masks index LEO's `pcd_with_global_alignment/<scene>.pth`, the
`<scene>_vh_clean_2.ply` vertices in file order multiplied by the scene's axisAlignment
(github cshizhe/vil3dref `preprocess/scannetv2/prepare_scannet_data.py`, which LEO's
`data/datasets.py` ~110-131 loads beside the masks); Ross3D pairs the masks with its own
`pcd_with_object_aabbs` xyz, the same vertices read by open3d and aligned
(`extract_scannet_pcd.py` lines 40-47, 140). Here: `load_scene(dir).mesh_aligned()`, our
reader of the same file in the same order (float64 transform, float32 vertices, as open3d's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ross3d_benchmarks import BoxTable, write_boxes_json

from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import JobResult, JobSummary

PUBLISHED_TOP = 50  # extract_pred_box.py line 30: the first 50 masks of each scene
MASK_SUFFIX = ".mask.npz"


def mask_path(mask_dir: Path, scene_id: str) -> Path:
    """LEO's file name: MASK_DIR/<scene_id>.mask.npz."""
    return Path(mask_dir) / f"{scene_id}{MASK_SUFFIX}"


def read_masks(path: Path):
    """The sparse [masks x points] matrix of a LEO mask file (CSR); SceneError naming the file
    when it is missing or not a scipy sparse .npz."""
    from scipy import sparse

    path = Path(path)
    if not path.is_file():
        raise SceneError(path, "mask file not found (LEO's mask/<scene>.mask.npz)")
    try:
        return sparse.load_npz(path).tocsr()
    except (OSError, ValueError, KeyError) as err:
        raise SceneError(path, f"not a scipy sparse .npz (sparse.save_npz): {err}") from None


def boxes_from_masks(
    masks_MP, points_P3: np.ndarray, top: int = PUBLISHED_TOP
) -> list[list[float]]:
    """[cx, cy, cz, dx, dy, dz] of each of the first `top` masks: min/max box of the points whose
    entry is 1 (module docstring). ValueError when the point counts differ or a mask selects no
    point (the published script then drops the scene)."""
    if masks_MP.shape[1] != len(points_P3):
        raise ValueError(
            f"the masks have {masks_MP.shape[1]} columns but the aligned mesh has "
            f"{len(points_P3)} vertices (LEO's masks index the vh_clean_2.ply vertices in order)"
        )
    points = np.asarray(points_P3, dtype=np.float32).astype(np.float64)
    boxes = []
    for row in range(min(top, masks_MP.shape[0])):
        mask = np.asarray(masks_MP[row].toarray()).ravel()
        inside = points[mask == 1]
        if len(inside) == 0:
            raise ValueError(
                f"mask {row} selects no point (the published extract_pred_box.py drops the scene)"
            )
        lo, hi = inside.min(axis=0), inside.max(axis=0)
        boxes.append([*((lo + hi) / 2).tolist(), *(hi - lo).tolist()])
    return boxes


def scene_proposals(scene_dir: Path, mask_dir: Path, top: int, fmt: str | None) -> tuple[str, list]:
    """(scene id, boxes) of one scene folder; SceneError naming the file on any problem."""
    from ross3d_data.datasets import load_scene

    scene = load_scene(scene_dir, fmt=fmt)
    mesh = scene.mesh_aligned()
    if mesh is None:
        raise SceneError(scene_dir, "no scan mesh: the masks index its vertices")
    path = mask_path(mask_dir, scene.scene_id)
    try:
        return scene.scene_id, boxes_from_masks(read_masks(path), mesh.vertices_N3, top)
    except ValueError as err:
        raise SceneError(path, str(err)) from None


@dataclass(frozen=True)
class ProposalsConfig:
    mask_dir: Path
    out: Path  # scannet_{split}_pred_box.json
    top: int = PUBLISHED_TOP
    scene_format: str | None = None  # None: detect each folder

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")
        if not Path(self.mask_dir).is_dir():
            raise ValueError(f"{self.mask_dir}: mask folder not found")


def make_proposals(scenes: list[Path], cfg: ProposalsConfig) -> JobSummary:
    """Write the published-layout proposals file of every scene under `scenes` (folders or
    roots); a scene that fails is left out and listed as failed, as the published script
    leaves it out. The file is written whole, atomically, once."""
    from ross3d_data.datasets import find_scenes

    summary = JobSummary("proposals")
    table: BoxTable = {}
    for root in scenes:
        for scene_dir in find_scenes(Path(root), cfg.scene_format):
            try:
                scene_id, boxes = scene_proposals(
                    scene_dir, cfg.mask_dir, cfg.top, cfg.scene_format
                )
            except SceneError as err:
                summary.results.append(JobResult(scene_dir.name, "failed", str(err)))
                continue
            table[scene_id] = dict(enumerate(boxes))
            summary.results.append(JobResult(scene_id, "done", f"{len(boxes)} boxes"))
    out = Path(cfg.out)
    tmp = out.with_name(out.name + ".tmp")
    write_boxes_json(table, tmp, layout="published")
    os.replace(tmp, out)
    return summary
