"""Scenes and shard clips as Rerun recordings (``.rrd``), to look at in the Rerun viewer.

``inspect_scene`` opens a scene of any format ``load_scene`` reads; ``inspect_clip`` reads one
clip of a build-shards folder. Both write one recording (``rerun <file>.rrd`` opens it):

* ``world``: the aligned frame (metres, z up: ``ViewCoordinates.RIGHT_HAND_Z_UP``);
* ``world/mesh``: the aligned scan mesh with its vertex colours (scenes; a clip stores none);
* ``world/boxes``: the GT object boxes, labelled ``<label> #<object id>``;
* ``world/views/NNN``: view NNN as a posed pinhole camera (``Transform3D`` = aligned
  camera-to-world, ``Pinhole`` = its crop intrinsics), with ``rgb`` (``Image``) and ``depth``
  (``DepthImage``, millimetres) under it. Views are prepared exactly as the model gets them
  (``views.coords.prepare_view``: 384x384 crops), so colour and depth share one camera;
* ``world/trajectory``: the camera centres as one line (every valid frame of a scene; the
  clip's views in order for a clip, which stores no other pose);
* ``world/tokens``: the 3D token coordinates of one view (one point per valid grid cell,
  coloured by the cell's mean image colour);
* ``bev``: the BEV image, ``bev/cameras``: the views' camera centres on it;
* ``info``: a markdown summary (scene, dataset, frames, notes); ``instructions``: a clip's
  instructions from every split's index.

Everything is static (no timeline): all cameras show at once. The recording streams to its
file from the first call (``RecordingStream.save`` before anything is logged), so memory stays
bounded by one scene. ``rerun-sdk`` is imported only here, when a recording is written.
Recordings are tied to the Rerun version that wrote them (``rerun rrd migrate`` upgrades).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.views.selection import VIEW_METHODS

if TYPE_CHECKING:
    from ross3d_data.core.records import Mesh
    from ross3d_data.core.scene import Scene

APPLICATION_ID = "ross3d-data"
IMAGE_PLANE_M = 0.25  # how far from the camera centre a view's image is drawn


@dataclass(frozen=True)
class InspectConfig:
    """Which views of a scene are drawn (``views`` chosen by ``method``, as build-shards
    does), the dataset format (None: detected), where a rendered BEV may be read
    (``bev_dir/<scene_id>/bev.png``, else it is rendered) and which view's tokens are shown."""

    views: int = 16
    method: str = "uniform"
    fmt: str | None = None
    bev_dir: Path | None = None
    token_view: int = 0

    def __post_init__(self) -> None:
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        if self.method not in VIEW_METHODS:
            raise ValueError(f"method must be one of {VIEW_METHODS}, got {self.method!r}")
        if not 0 <= self.token_view < self.views:
            raise ValueError(f"token_view must be in [0, {self.views}), got {self.token_view}")


@dataclass(frozen=True)
class ViewStack:
    """The drawn views as arrays (V views of side S, token grid G), a clip's layout."""

    frame_ids_V: np.ndarray
    images_VSS3: np.ndarray
    depth_mm_VSS: np.ndarray
    K_crop_V33: np.ndarray
    T_aligned_cam_V44: np.ndarray
    coords_VGG3: np.ndarray
    coords_valid_VGG: np.ndarray


def release_closed_recordings() -> None:
    """Free the threads and buffers of recordings already closed and no longer referenced.

    rerun-sdk 0.41 keeps every stream's threads (2 per stream) until this sweep, so a process
    writing hundreds of recordings would grow without it (measured: ~1.2 MB and 2 threads per
    recording). A default blueprint would add a blueprint stream that the sweep never frees,
    so none is sent: the viewer lays the entities out itself."""
    from rerun_bindings import flush_and_cleanup_orphaned_recordings

    flush_and_cleanup_orphaned_recordings()


def open_recording(path: Path, recording_id: str):
    """A RecordingStream saving to ``path`` (parents created) before anything is logged
    (after freeing the recordings closed before it)."""
    import rerun as rr

    release_closed_recordings()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = rr.RecordingStream(APPLICATION_ID, recording_id=recording_id)
    rec.save(path)
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    return rec


def close_recording(rec) -> None:
    """Write everything logged to the file and close it."""
    rec.flush()
    rec.disconnect()


def log_mesh(rec, mesh: Mesh, path: str = "world/mesh") -> None:
    import rerun as rr

    rec.log(
        path,
        rr.Mesh3D(
            vertex_positions=np.asarray(mesh.vertices_N3, np.float32),
            triangle_indices=np.asarray(mesh.faces_F3, np.uint32),
            vertex_colors=np.asarray(mesh.colors_N3, np.uint8),
        ),
        static=True,
    )


def log_boxes(
    rec, boxes_K6: np.ndarray, labels: list[str], path: str = "world/boxes", colors=None
) -> None:
    """Axis-aligned ``[cx, cy, cz, dx, dy, dz]`` boxes (full sizes) with labels."""
    import rerun as rr

    boxes_K6 = np.asarray(boxes_K6, np.float64).reshape(-1, 6)
    if len(labels) != len(boxes_K6):
        raise ValueError(f"{len(boxes_K6)} boxes but {len(labels)} labels")
    rec.log(
        path,
        rr.Boxes3D(
            centers=boxes_K6[:, :3], half_sizes=boxes_K6[:, 3:] / 2, labels=labels, colors=colors
        ),
        static=True,
    )


def rerun_intrinsics(K_33: np.ndarray) -> np.ndarray:
    """``K`` for Rerun: our intrinsics put pixel centres at integers (OpenCV), Rerun at
    ``+0.5`` (the top-left corner of the image is 0), so the principal point moves by half a
    pixel."""
    K = np.asarray(K_33, np.float64).copy()
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    return K


def log_views(rec, views: ViewStack, root: str = "world/views") -> None:
    """Each view as a posed pinhole camera with its colour image and depth."""
    import rerun as rr

    for i in range(len(views.frame_ids_V)):
        path, T = f"{root}/{i:03d}", np.asarray(views.T_aligned_cam_V44[i], np.float64)
        height, width = views.images_VSS3[i].shape[:2]
        rec.log(path, rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]), static=True)
        rec.log(
            path,
            rr.Pinhole(
                image_from_camera=rerun_intrinsics(views.K_crop_V33[i]),
                resolution=[width, height],
                camera_xyz=rr.ViewCoordinates.RDF,  # OpenCV camera axes
                image_plane_distance=IMAGE_PLANE_M,
            ),
            static=True,
        )
        rec.log(f"{path}/rgb", rr.Image(views.images_VSS3[i]), static=True)
        depth = np.asarray(views.depth_mm_VSS[i], np.uint16)
        rec.log(f"{path}/depth", rr.DepthImage(depth, meter=1000.0), static=True)


def log_trajectory(rec, centres_N3: np.ndarray, path: str = "world/trajectory") -> None:
    import rerun as rr

    if len(centres_N3) >= 2:
        rec.log(path, rr.LineStrips3D([np.asarray(centres_N3, np.float32)]), static=True)


def token_cell_colors(image_SS3: np.ndarray, grid: int) -> np.ndarray:
    """``(G, G, 3)`` uint8 mean colour of each token cell: the top-left ``grid * (S // grid)``
    pixels split into ``grid x grid`` cells (the cells ``views.coords`` averages xyz over
    when the crop is ``grid * (S // grid)``, as with 378 of 384)."""
    cell = image_SS3.shape[0] // grid
    side = cell * grid
    cells = image_SS3[:side, :side].reshape(grid, cell, grid, cell, 3).astype(np.float64)
    return np.rint(cells.mean(axis=(1, 3))).astype(np.uint8)


def log_tokens(rec, views: ViewStack, index: int, path: str = "world/tokens") -> None:
    """The valid token cells of view ``index`` as points at their aligned xyz."""
    import rerun as rr

    valid = np.asarray(views.coords_valid_VGG[index], bool)
    colors = token_cell_colors(views.images_VSS3[index], valid.shape[0])
    rec.log(
        path,
        rr.Points3D(
            np.asarray(views.coords_VGG3[index], np.float32)[valid],
            colors=colors[valid],
            radii=0.02,
        ),
        static=True,
    )


def log_bev(rec, bev_HW3: np.ndarray, world_to_pixel_33: np.ndarray, centres_V3: np.ndarray):
    """The BEV image with the views' camera centres drawn on it (numbered by view)."""
    import rerun as rr

    rec.log("bev", rr.Image(np.asarray(bev_HW3, np.uint8)), static=True)
    xy1 = np.c_[np.asarray(centres_V3)[:, :2], np.ones(len(centres_V3))]
    px = xy1 @ np.asarray(world_to_pixel_33, np.float64).T  # continuous pixels, corner at 0
    labels = [str(i) for i in range(len(centres_V3))]
    rec.log("bev/cameras", rr.Points2D(px[:, :2], labels=labels, radii=3.0), static=True)


def log_text(rec, path: str, markdown: str) -> None:
    import rerun as rr

    rec.log(path, rr.TextDocument(markdown, media_type=rr.MediaType.MARKDOWN), static=True)


def _object_labels(objects) -> list[str]:
    return [f"{o.label} #{o.object_id}" for o in objects]


def _scene_views(scene: Scene, frame_ids: list[int], notes: list[str]) -> ViewStack | None:
    """The chosen frames prepared as the model gets them; unreadable frames are left out
    (and said in ``notes``)."""
    from ross3d_data.views.coords import prepare_view

    kept, prepared, poses = [], [], []
    for fid in frame_ids:
        try:
            frame, T = scene.load_frame(fid), scene.T_aligned_cam(fid)
            view = prepare_view(frame.color_HW3, frame.depth_mm_HW, *scene.frame_intrinsics(fid), T)
        except (SceneError, OSError, ValueError) as exc:
            notes.append(f"frame {fid} left out: {exc}")
            continue
        kept.append(fid)
        prepared.append(view)
        poses.append(T)
    if not kept:
        return None
    return ViewStack(
        np.asarray(kept, np.int64),
        np.stack([v.image_SS3 for v in prepared]),
        np.stack([v.depth_mm_SS for v in prepared]),
        np.stack([v.K_crop_33 for v in prepared]),
        np.stack(poses),
        np.stack([v.coords_GG3 for v in prepared]),
        np.stack([v.coords_valid_GG for v in prepared]),
    )


def _scene_centres(scene: Scene) -> np.ndarray:
    """``(N, 3)`` aligned camera centres of every valid frame, in frame order."""
    ids = scene.frame_ids()
    return np.array([scene.T_aligned_cam(fid)[:3, 3] for fid in ids]).reshape(-1, 3)


def _info(title: str, rows: list[tuple[str, Any]], notes: list[str]) -> str:
    lines = [f"# {title}", ""] + [f"* **{k}**: {v}" for k, v in rows]
    if notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _log_scene(rec, scene: Scene, cfg: InspectConfig, notes: list[str]) -> ViewStack | None:
    from ross3d_data.bev.files import load_or_render_bev
    from ross3d_data.views.selection import choose_views

    mesh = scene.mesh_aligned()
    if mesh is not None:
        log_mesh(rec, mesh)
    else:
        notes.append("no mesh in this scene")
    if scene.objects:
        boxes = np.array([o.box_6 for o in scene.objects], np.float64).reshape(-1, 6)
        log_boxes(rec, boxes, _object_labels(scene.objects))
    else:
        notes.append("no annotated objects: no boxes")
    views = None
    if scene.frame_ids():
        views = _scene_views(scene, choose_views(scene, cfg.views, cfg.method), notes)
        log_trajectory(rec, _scene_centres(scene))
    else:
        notes.append("no frames with a valid pose: no cameras")
    if views is not None:
        log_views(rec, views)
        log_tokens(rec, views, min(cfg.token_view, len(views.frame_ids_V) - 1))
    try:
        bev, w2p = load_or_render_bev(scene, cfg.bev_dir)
        centres = np.zeros((0, 3)) if views is None else views.T_aligned_cam_V44[:, :3, 3]
        log_bev(rec, bev, w2p, centres)
    except SceneError as exc:
        notes.append(f"no BEV ({exc})")
    return views


def inspect_scene(
    scene_dir: Path,
    out_dir: Path,
    *,
    views: int = 16,
    method: str = "uniform",
    fmt: str | None = None,
    bev_dir: Path | None = None,
) -> Path:
    """Write ``out_dir/<scene_id>.rrd`` for the scene in ``scene_dir`` (see the module
    docstring); returns its path. SceneError when the folder is not a readable scene."""
    from ross3d_data.datasets import load_scene

    cfg = InspectConfig(views=views, method=method, fmt=fmt, bev_dir=bev_dir)
    scene = load_scene(Path(scene_dir), fmt=cfg.fmt)
    out = Path(out_dir) / f"{scene.scene_id}.rrd"
    notes: list[str] = []
    rec = open_recording(out, scene.scene_id)
    try:
        drawn = _log_scene(rec, scene, cfg, notes)
        frames = [] if drawn is None else drawn.frame_ids_V.tolist()
        rows = [
            ("scene", scene.scene_id),
            ("dataset", scene.dataset),
            ("folder", scene.root),
            ("valid frames", len(scene.frame_ids())),
            ("skipped frames (invalid pose)", len(scene.skipped_frame_ids())),
            (f"views ({cfg.method})", frames),
            ("objects", len(scene.objects)),
            ("tokens shown for view", cfg.token_view if frames else "none"),
        ]
        log_text(rec, "info", _info(f"Scene {scene.scene_id}", rows, notes))
    finally:
        close_recording(rec)
    return out


def _clip_views(clip) -> ViewStack:
    a = clip.arrays
    return ViewStack(
        a["frame_ids"],
        clip.images_VSS3,
        clip.depth_mm_VSS,
        a["K_crop"],
        a["T_aligned_cam"],
        a["coords"],
        a["coords_valid"],
    )


def _instructions_markdown(reader, key: str) -> tuple[str, int]:
    """Every instruction of clip ``key`` in every split's index, as markdown, and how many."""
    from ross3d_benchmarks import SPLITS

    lines, count = [f"# Instructions of {key}", ""], 0
    for split in SPLITS:
        for inst in reader.instructions(split).get(key, []):
            count += 1
            lines += [f"## {split} / {inst['task']} / {inst['id']}", "", inst["prompt"], ""]
            if inst.get("answers"):
                lines += ["answers: " + " | ".join(inst["answers"]), ""]
            if inst.get("object_ids"):
                lines += [f"objects: {inst['object_ids']}", ""]
    if not count:
        lines.append("(no instruction names this clip: a vision-only clip)")
    return "\n".join(lines) + "\n", count


def inspect_clip(shards: Path, key: str, out_dir: Path) -> Path:
    """Write ``out_dir/<key>.clip.rrd`` for clip ``key`` of the build-shards folder
    ``shards`` (see the module docstring); returns its path. A clip stores no mesh and no
    masking (cross-view masks are drawn at training time), so neither is shown."""
    from ross3d_data.shards.reader import ShardReader

    reader = ShardReader(shards, cache_clips=0)
    try:
        if key not in reader:
            raise ValueError(f"{shards}: no clip {key!r}; it has {', '.join(reader.keys[:5])}...")
        clip = reader.clip(key)
        out = Path(out_dir) / f"{key}.clip.rrd"
        rec = open_recording(out, f"{key}.clip")
        try:
            views = _clip_views(clip)
            centres = np.asarray(views.T_aligned_cam_V44, np.float64)[:, :3, 3]
            log_boxes(rec, clip.arrays["boxes"], [
                f"{label} #{oid}" for label, oid in zip(
                    clip.labels, clip.arrays["object_ids"].tolist(), strict=True)
            ])  # fmt: skip
            log_views(rec, views)
            log_trajectory(rec, centres)
            log_tokens(rec, views, 0)
            log_bev(rec, clip.bev_HW3, clip.arrays["bev_world_to_pixel"], centres)
            text, count = _instructions_markdown(reader, key)
            log_text(rec, "instructions", text)
            rows = [
                ("clip", key),
                ("shards", Path(shards)),
                ("splits", ", ".join(reader.splits_of(key)) or "none recorded"),
                (f"views ({clip.meta.get('method')})", views.frame_ids_V.tolist()),
                ("skipped frames", clip.meta.get("skipped_frames", {})),
                ("objects", len(clip.labels)),
                ("instructions", count),
                ("masked views", "none (a clip stores no masking)"),
                ("tokens shown for view", 0),
            ]
            log_text(rec, "info", _info(f"Clip {key}", rows, ["a clip stores no mesh"]))
        finally:
            close_recording(rec)
    finally:
        reader.close()
    return out
