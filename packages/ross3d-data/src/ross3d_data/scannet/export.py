"""Export ``.sens`` streams to posed-image folders (ScanNet exporter layout), resumably.

Each scene is written to ``OUT/.<scene_id>.partial`` and renamed to ``OUT/<scene_id>`` only when
complete, with an ``export.json`` manifest last; so a killed run never leaves a half scene that
looks done, and a rerun skips finished scenes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ross3d_data.core.engines import Engine, TaskResources, check_engine
from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import pose_is_valid
from ross3d_data.scannet import files as scannet
from ross3d_data.scannet import posed, sens

MANIFEST = "export.json"
EXPORT_TASK = TaskResources(cpus=1.0, memory_gib=1.0)  # one .sens streamed frame by frame


@dataclass(frozen=True)
class ExportConfig:
    """``every``: keep source frames 0, every, 2*every, ... (Video-3D-LLM keeps every 10th).
    ``engine``/``ray_address``: where the scenes run (``core.engines``; same files on each)."""

    out: Path
    every: int = 10
    workers: int = 1
    overwrite: bool = False
    engine: Engine = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        check_engine(self.engine, self.ray_address)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


def export_scene_frames(sens_file: Path, out_dir: Path, every: int = 10) -> dict:
    """Write ``color/ depth/ pose/ intrinsic/`` of frames ``0, every, ...`` with finite poses.

    JPEG colour is copied byte for byte (no re-encoding, but decoded once to check it); depth
    becomes uint16 mm PNG. A frame whose colour or depth does not decode is skipped (nothing of
    it is written) and the scene kept. Returns the manifest (also written to
    ``out_dir/export.json``): frame count, skipped -inf poses, skipped corrupt frames.
    """
    header = sens.read_sens_header(sens_file)
    posed.write_intrinsics(out_dir, header.color_intrinsics, header.depth_intrinsics)
    for sub in ("color", "depth", "pose"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    kept, skipped, corrupt = [], [], []
    for rec in sens.iter_sens(sens_file, every):
        if not pose_is_valid(rec.T_world_cam):
            skipped.append(rec.frame_id)
            continue
        try:
            _write_record(sens_file, header, rec, out_dir)
        except SceneError:  # one undecodable image costs that frame, not the scene
            corrupt.append(rec.frame_id)
            continue
        kept.append(rec.frame_id)
    manifest = {"source": str(sens_file), "every": every, "frames": len(kept),
                "skipped_invalid_pose": skipped, "skipped_corrupt": corrupt}  # fmt: skip
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _write_record(
    sens_file: Path, header: sens.SensHeader, rec: sens.SensRecord, out: Path
) -> None:
    """Write one frame's files; SceneError (nothing written) when an image does not decode."""
    i = rec.frame_id
    rgb = sens.decode_color(sens_file, header, rec)
    depth_mm = sens.decode_depth_mm(sens_file, header, rec)
    color_file = out / "color" / f"{i}.jpg"
    if header.color_compression == 2 and rec.color_bytes[:2] == b"\xff\xd8":
        color_file.write_bytes(rec.color_bytes)  # already JPEG: copy, do not re-encode
    else:
        cv2.imwrite(str(color_file), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out / "depth" / f"{i}.png"), depth_mm)
    np.savetxt(out / "pose" / f"{i}.txt", rec.T_world_cam, fmt="%f")


def is_exported(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a finished export (its manifest is written last)."""
    return (out_dir / MANIFEST).is_file()


def export_scene_job(payload: tuple[Path, Path, int]) -> str:
    """Export one scene via a ``.partial`` folder renamed into place when complete."""
    scene_dir, final, every = payload
    sens_file = scannet.sens_path(scene_dir)
    if final.resolve() == scene_dir.resolve():
        raise SceneError(
            final, "export output would replace the scan folder itself; pick another --out"
        )
    if not sens_file.is_file():
        raise SceneError(sens_file, "no .sens stream to export")
    tmp = final.parent / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = export_scene_frames(sens_file, tmp, every)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    n_bad = len(manifest["skipped_invalid_pose"])
    note = f"{manifest['frames']} frames, {n_bad} skipped (invalid pose)"
    if manifest["skipped_corrupt"]:
        ids = ", ".join(map(str, manifest["skipped_corrupt"]))
        note += f", {len(manifest['skipped_corrupt'])} skipped (corrupt image: frames {ids})"
    return note


def job_out_dir(payload: tuple[Path, Path, int]) -> Path:
    return payload[1]
