"""``export-frames`` over dataset roots: every ScanNet scan found (``find_scenes(path, "scannet")``)
exported by ``scannet.export`` on the chosen engine, resumably (it lives here, above the
registry, because finding scans is the registry's job)."""

from __future__ import annotations

from pathlib import Path

from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import JobSummary, make_out_dir, run_scene_jobs
from ross3d_data.datasets.registry import find_scenes
from ross3d_data.scannet.export import (
    EXPORT_TASK,
    ExportConfig,
    export_scene_job,
    is_exported,
    job_out_dir,
)


def export_frames(scene_paths: list[Path], cfg: ExportConfig) -> JobSummary:
    """Export every scene found under ``scene_paths`` to ``cfg.out/<scene_id>`` in parallel.

    Each path is a ScanNet scan folder, a folder of them or the dataset root (``scans/`` is
    descended: ``datasets.find_scenes(path, "scannet")``). Scenes already exported are skipped
    unless ``cfg.overwrite``; a failing scene is reported in the summary and the others continue.
    """
    make_out_dir(cfg.out)
    items, seen = [], {}
    for p in scene_paths:
        for scene_dir in find_scenes(p, "scannet"):
            if scene_dir.name in seen:  # both would write OUT/<scene_id>
                raise SceneError(scene_dir, f"scene id also found at {seen[scene_dir.name]}")
            seen[scene_dir.name] = scene_dir
            items.append((scene_dir.name, (scene_dir, cfg.out / scene_dir.name, cfg.every)))
    return run_scene_jobs(
        items, export_scene_job, workers=cfg.workers, desc="export frames",
        is_done=lambda payload: is_exported(job_out_dir(payload)), overwrite=cfg.overwrite,
        engine=cfg.engine, ray_address=cfg.ray_address, resources=EXPORT_TASK,
    )  # fmt: skip
