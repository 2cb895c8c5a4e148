"""ScanNet scan-folder side files: ``<id>.txt`` meta and the object annotations.

``<id>.aggregation.json`` lists ``segGroups`` (objectId, label, segments);
``<id>_vh_clean_2.0.010000.segs.json`` gives one segment id per mesh vertex. An object's box is
the axis-aligned min/max of its vertices after alignment, as ``[cx, cy, cz, dx, dy, dz]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Intrinsics, SceneObject


def mesh_path(scene_dir: Path) -> Path:
    return scene_dir / f"{scene_dir.name}_vh_clean_2.ply"


def meta_path(scene_dir: Path) -> Path:
    return scene_dir / f"{scene_dir.name}.txt"


def aggregation_path(scene_dir: Path) -> Path:
    return scene_dir / f"{scene_dir.name}.aggregation.json"


def segs_path(scene_dir: Path) -> Path:
    return scene_dir / f"{scene_dir.name}_vh_clean_2.0.010000.segs.json"


def sens_path(scene_dir: Path) -> Path:
    return scene_dir / f"{scene_dir.name}.sens"


def read_meta(path: Path) -> dict[str, str]:
    """``key = value`` lines of a ScanNet ``<id>.txt`` as strings."""
    meta: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            raise SceneError(path, f"line {n} is not 'key = value': {line!r}")
        key, value = line.split("=", 1)
        meta[key.strip()] = value.strip()
    return meta


def axis_alignment(meta: dict[str, str], path: Path) -> np.ndarray:
    """4x4 ``T_aligned_world`` from ``axisAlignment`` (row-major), identity when absent."""
    if "axisAlignment" not in meta:
        return np.eye(4)
    try:
        vals = [float(v) for v in meta["axisAlignment"].split()]
    except ValueError as e:
        raise SceneError(path, f"axisAlignment is not numeric: {e}") from None
    if len(vals) != 16:
        raise SceneError(path, f"axisAlignment has {len(vals)} values, expected 16")
    T = np.asarray(vals, np.float64).reshape(4, 4)
    if not np.all(np.isfinite(T)):
        raise SceneError(path, "axisAlignment is not finite")
    return T


def meta_intrinsics(meta: dict[str, str], kind: str, path: Path) -> Intrinsics | None:
    """Intrinsics for ``kind`` in {"color", "depth"} when all keys are present, else None."""
    keys = [f"fx_{kind}", f"fy_{kind}", f"mx_{kind}", f"my_{kind}", f"{kind}Width", f"{kind}Height"]
    if not all(k in meta for k in keys):
        return None
    try:
        fx, fy, cx, cy = (float(meta[k]) for k in keys[:4])
        return Intrinsics(fx, fy, cx, cy, int(meta[keys[4]]), int(meta[keys[5]]))
    except ValueError as e:
        raise SceneError(path, f"bad {kind} intrinsics: {e}") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SceneError(path, f"cannot read JSON: {e}") from None


def read_objects(
    agg_file: Path, segs_file: Path, vertices_aligned_N3: np.ndarray
) -> list[SceneObject]:
    """Objects of a scan with boxes from their (already aligned) mesh vertices.

    Objects whose segments cover no vertex are skipped (ScanNet has none; a corrupt file would).
    """
    seg_idx = np.asarray(_read_json(segs_file).get("segIndices", []), np.int64)
    if len(seg_idx) != len(vertices_aligned_N3):
        raise SceneError(
            segs_file,
            f"segIndices has {len(seg_idx)} entries but the mesh has "
            f"{len(vertices_aligned_N3)} vertices",
        )
    objects = []
    for group in _read_json(agg_file).get("segGroups", []):
        try:
            oid, label, segs = int(group["objectId"]), str(group["label"]), group["segments"]
        except (KeyError, TypeError, ValueError) as e:
            raise SceneError(agg_file, f"malformed segGroup {group!r}: {e}") from None
        pts = vertices_aligned_N3[np.isin(seg_idx, np.asarray(segs, np.int64))]
        if len(pts) == 0:
            continue
        lo, hi = pts.min(0).astype(np.float64), pts.max(0).astype(np.float64)
        objects.append(SceneObject(oid, label, np.concatenate([(lo + hi) / 2, hi - lo])))
    return objects


def write_meta(
    path: Path, T_aligned_world: np.ndarray, color: Intrinsics, depth: Intrinsics
) -> None:
    """Write a ScanNet-style ``<id>.txt`` with alignment and intrinsics."""
    lines = ["axisAlignment = " + " ".join(f"{v:.9g}" for v in np.asarray(T_aligned_world).ravel())]
    for kind, K in (("color", color), ("depth", depth)):
        lines += [f"{kind}Height = {K.height}", f"{kind}Width = {K.width}"]
        lines += [f"fx_{kind} = {K.fx}", f"fy_{kind} = {K.fy}"]
        lines += [f"mx_{kind} = {K.cx}", f"my_{kind} = {K.cy}"]
    Path(path).write_text("\n".join(lines) + "\n")


def write_annotations(
    scene_dir: Path, seg_idx_N: np.ndarray, objects: list[tuple[int, str, list[int]]]
) -> None:
    """Write ``segs.json`` (one segment per vertex) and ``aggregation.json`` (id, label, segments)."""
    sid = scene_dir.name
    segs = {"sceneId": sid, "segIndices": [int(s) for s in seg_idx_N]}
    segs_path(scene_dir).write_text(json.dumps(segs))
    groups = [
        {"id": i, "objectId": oid, "segments": list(map(int, segs_)), "label": label}
        for i, (oid, label, segs_) in enumerate(objects)
    ]
    agg = {"sceneId": f"scannet.{sid}", "segGroups": groups,
           "segmentsFile": f"scannet.{segs_path(scene_dir).name}"}  # fmt: skip
    aggregation_path(scene_dir).write_text(json.dumps(agg))
