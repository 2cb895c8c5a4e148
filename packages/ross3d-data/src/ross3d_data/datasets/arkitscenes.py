"""ARKitScenes 3DOD videos (apple/ARKitScenes, ``threedod``) as a ``Scene``.

Layout of one video (``<split>/<vid>/``, as ``threedod/benchmark_scripts/utils/
tenFpsDataLoader.py`` ``TenFpsDataLoader.__init__`` reads it)::

    <vid>_3dod_mesh.ply                 coloured mesh, world frame (Z up, metres)
    <vid>_3dod_annotation.json          oriented boxes (``data[].segments.obbAligned``)
    <vid>_frames/lowres_wide.traj       ``ts ax ay az tx ty tz`` per line
    <vid>_frames/lowres_wide/<vid>_<ts>.png              RGB
    <vid>_frames/lowres_depth/<vid>_<ts>.png             uint16 millimetres, 0 = invalid
    <vid>_frames/lowres_wide_intrinsics/<vid>_<ts>.pincam  ``w h fx fy cx cy``

Conventions, each as the official loader implements it:

- Poses: a ``.traj`` line is the angle-axis (Rodrigues, radians) and translation (metres) of
  the WORLD-TO-CAMERA transform; ``TrajStringToMatrix`` (tenFpsDataLoader.py) builds
  ``[[R, t], [0, 1]]`` and returns its inverse, the camera-to-world pose used here. Camera axes
  are OpenCV's (x right, y down, z forward), as ``generate_point`` back-projects.
- Frames: the depth folder lists the frames; the timestamp is the file name's text after
  ``<vid>_``. A pose is matched as ``TenFpsDataLoader.__getitem__`` does: traj keys are
  ``f"{round(ts, 3):.3f}"`` (a later line overwrites an earlier one with the same key), an
  exact key match first, else the LAST key (in traj order) within 0.005 s. Intrinsics are
  ``<vid>_<ts>.pincam``, else the file at ``ts - 0.001``, else ``ts + 0.001`` (``:.3f``).
- Frame ids are 0..N-1 over the depth files in timestamp order (``ArkitFrames.timestamp``
  gives the file's timestamp text back); frames without a pose, colour image or intrinsics are
  skipped and counted (``skipped_frame_ids``, ``skip_reasons``).
- Upright: frames are stored in the sensor's orientation; each is turned upright as
  ``rectify_im.decide_pose`` decides from its pose, and its intrinsics and pose turn with it
  (``core.rotation``), so intrinsics vary per frame (``ArkitFrames.intrinsics``).
- Alignment: the world is Z up but not room-aligned. ``T_aligned_world`` is the rotation about
  z by minus the mesh's dominant wall yaw (``core.rotation.dominant_wall_yaw``; identity
  without a mesh or walls); no translation.
- Boxes: an ``obbAligned`` box's corners are ``reshape(normalizedAxes, 3, 3).T @ (+-l/2, ...)
  + centroid`` (``box_utils.compute_box_3d``); ``box_6`` is the axis-aligned extent of those
  corners in the aligned frame (exact for boxes that stand along the walls, larger otherwise).
  Labels are kept as written (the official 17-class filter is the benchmark's, not the
  reader's); ``object_id`` is ``objectId`` when it is an integer, else the entry's index.
- 24 videos ship without mesh, annotation and trajectory (``download_data.py``
  ``missing_3dod_assets_video_ids``): loading one raises a SceneError saying so.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.ids import folder_scene_id
from ross3d_data.core.records import Frame, Intrinsics, Mesh, SceneObject
from ross3d_data.core.rotation import (
    dominant_wall_yaw,
    rotate_image_upright,
    rotate_intrinsics_upright,
    rotate_pose_upright,
    upright_turns,
    yaw_rotation_44,
)
from ross3d_data.core.scene import Scene
from ross3d_data.datasets.meshes import read_mesh

__all__ = ["ArkitFrames", "PoseKeys", "is_scene_dir", "load_scene", "read_traj", "scene_id_for"]

POSE_MATCH_S = 0.005  # TenFpsDataLoader.__getitem__'s tolerance
PINCAM_STEP_S = 0.001  # its intrinsics fallback


def mesh_path(video_dir: Path) -> Path:
    return video_dir / f"{video_dir.name}_3dod_mesh.ply"


def annotation_path(video_dir: Path) -> Path:
    return video_dir / f"{video_dir.name}_3dod_annotation.json"


def frames_path(video_dir: Path) -> Path:
    return video_dir / f"{video_dir.name}_frames"


def scene_id_for(video_dir: Path) -> str:
    """``arkitscenes-<video_id>`` (``core.ids``; video ids are digits: no dot in a key)."""
    return folder_scene_id("arkitscenes", video_dir)


def is_scene_dir(path: Path) -> bool:
    """A ``<vid>/`` folder holding ``<vid>_3dod_mesh.ply`` or ``<vid>_frames/``."""
    path = Path(path)
    return mesh_path(path).is_file() or frames_path(path).is_dir()


def read_traj(path: Path) -> dict[str, np.ndarray]:
    """Camera-to-world 4x4 poses keyed ``f"{round(ts, 3):.3f}"``, in traj order (a later line
    with the same key replaces the pose but keeps the key's place, as a Python dict does in
    ``TenFpsDataLoader``). Each line is world-to-camera ``ts ax ay az tx ty tz``; the inverse
    is taken as ``TrajStringToMatrix`` does."""
    poses: dict[str, np.ndarray] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        try:
            ts, vals = float(tok[0]), np.array([float(x) for x in tok[1:]], np.float64)
        except ValueError as e:
            raise SceneError(path, f"line {n}: not numbers ({e})") from e
        if len(vals) != 6 or not np.isfinite(vals).all():
            raise SceneError(path, f"line {n}: need 7 finite columns 'ts ax ay az tx ty tz'")
        R_cam_world, _ = cv2.Rodrigues(vals[:3])
        T_world_cam = np.eye(4)
        T_world_cam[:3, :3] = R_cam_world.T
        T_world_cam[:3, 3] = -R_cam_world.T @ vals[3:]
        poses[f"{round(ts, 3):.3f}"] = T_world_cam
    return poses


class PoseKeys:
    """Traj keys in traj order, matched to frame timestamps as ``TenFpsDataLoader`` does."""

    def __init__(self, keys: list[str]) -> None:
        self.keys, self._exact = list(keys), set(keys)
        self._seconds = np.array([float(k) for k in self.keys])

    def match(self, ts: str) -> str | None:
        """The key of frame timestamp ``ts``: exact, else the LAST key within POSE_MATCH_S."""
        if ts in self._exact:
            return ts
        near = np.flatnonzero(np.abs(self._seconds - float(ts)) < POSE_MATCH_S)
        return self.keys[near[-1]] if len(near) else None


def _pincam(folder: Path, vid: str, ts: str, names: set[str]) -> Path | None:
    for cand in (ts, f"{float(ts) - PINCAM_STEP_S:.3f}", f"{float(ts) + PINCAM_STEP_S:.3f}"):
        if f"{vid}_{cand}.pincam" in names:
            return folder / f"{vid}_{cand}.pincam"
    return None


def read_pincam(path: Path) -> Intrinsics:
    """``w h fx fy cx cy`` (one line) as Intrinsics."""
    try:
        w, h, fx, fy, cx, cy = (float(x) for x in path.read_text().split())
        return Intrinsics(fx, fy, cx, cy, round(w), round(h))
    except ValueError as e:
        raise SceneError(path, f"need one line 'w h fx fy cx cy' with positive sizes ({e})") from e


class ArkitFrames:
    """The frames of one video, indexed once from the file names and the trajectory."""

    def __init__(self, video_dir: Path, traj: Path, upright: bool = True) -> None:
        self.path = frames_path(video_dir)
        self.vid = video_dir.name
        self.upright = upright
        self.skip_reasons: Counter[str] = Counter()
        poses = read_traj(traj)
        pose_keys = PoseKeys(list(poses))
        names = {
            sub: {p.name for p in (self.path / sub).glob("*")}
            for sub in ("lowres_wide", "lowres_wide_intrinsics")
        }
        self._ts = self._timestamps()
        self._valid: list[int] = []
        self._skipped: list[int] = []
        self._pose: dict[int, np.ndarray] = {}
        self._pincam: dict[int, Path] = {}
        for fid, ts in enumerate(self._ts):
            key = pose_keys.match(ts)
            pincam = _pincam(self.path / "lowres_wide_intrinsics", self.vid, ts,
                             names["lowres_wide_intrinsics"])  # fmt: skip
            why = ("no pose in lowres_wide.traj" if key is None
                   else "no lowres_wide image" if f"{self.vid}_{ts}.png" not in names["lowres_wide"]
                   else "no .pincam intrinsics" if pincam is None else None)  # fmt: skip
            if why is not None:
                self.skip_reasons[why] += 1
                self._skipped.append(fid)
                continue
            self._valid.append(fid)
            self._pose[fid], self._pincam[fid] = poses[key], pincam
        self._intr: dict[int, Intrinsics] = {}

    def _timestamps(self) -> list[str]:
        """Timestamp texts of ``lowres_depth/<vid>_<ts>.png``, in time order."""
        folder = self.path / "lowres_depth"
        if not folder.is_dir():
            raise SceneError(folder, "missing: the depth folder lists the frames")
        prefix, out = f"{self.vid}_", []
        for p in folder.glob("*.png"):
            ts = p.stem[len(prefix) :] if p.stem.startswith(prefix) else ""
            try:
                out.append((float(ts), ts))
            except ValueError:
                raise SceneError(p, f"not named {prefix}<timestamp>.png") from None
        return [ts for _, ts in sorted(out)]

    def frame_ids(self) -> list[int]:
        return list(self._valid)

    def skipped_frame_ids(self) -> list[int]:
        return list(self._skipped)

    def timestamp(self, frame_id: int) -> str:
        """The frame's timestamp as written in its file names (e.g. ``"305.244"``)."""
        return self._ts[frame_id]

    def _check(self, frame_id: int) -> None:
        if frame_id not in self._pose:
            raise SceneError(self.path, f"frame {frame_id} is not a valid frame of this video")

    def turns(self, frame_id: int) -> int:
        """Quarter turns that make the frame upright (0 when ``upright`` is off)."""
        self._check(frame_id)
        return upright_turns(self._pose[frame_id]) if self.upright else 0

    def raw_intrinsics(self, frame_id: int) -> Intrinsics:
        """The ``.pincam`` intrinsics (sensor orientation), read once."""
        self._check(frame_id)
        if frame_id not in self._intr:
            self._intr[frame_id] = read_pincam(self._pincam[frame_id])
        return self._intr[frame_id]

    def intrinsics(self, frame_id: int) -> tuple[Intrinsics, Intrinsics]:
        """(colour, depth) intrinsics of the (upright) frame: both images share one camera."""
        K = rotate_intrinsics_upright(self.raw_intrinsics(frame_id), self.turns(frame_id))
        return K, K

    def pose(self, frame_id: int) -> np.ndarray:
        self._check(frame_id)
        return rotate_pose_upright(self._pose[frame_id], self.turns(frame_id))

    def load_frame(self, frame_id: int) -> Frame:
        K = self.raw_intrinsics(frame_id)
        name = f"{self.vid}_{self._ts[frame_id]}.png"
        color = _read_image(self.path / "lowres_wide" / name, cv2.IMREAD_COLOR, (K.height, K.width))
        depth = _read_image(self.path / "lowres_depth" / name, cv2.IMREAD_UNCHANGED,
                            (K.height, K.width))  # fmt: skip
        if depth.dtype != np.uint16 or depth.ndim != 2:
            raise SceneError(self.path / "lowres_depth" / name, "depth must be 1-channel uint16")
        k = self.turns(frame_id)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
        return Frame(frame_id, rotate_image_upright(color, k), rotate_image_upright(depth, k),
                     self.pose(frame_id))  # fmt: skip


def _read_image(path: Path, flags: int, size_hw: tuple[int, int]) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SceneError(path, "missing or unreadable image")
    if image.shape[:2] != size_hw:
        raise SceneError(path, f"image is {image.shape[1]}x{image.shape[0]} but its .pincam "
                               f"says {size_hw[1]}x{size_hw[0]}")  # fmt: skip
    return image


def read_boxes(path: Path, T_aligned_world: np.ndarray) -> list[SceneObject]:
    """Objects of ``<vid>_3dod_annotation.json`` with aligned-frame axis-aligned boxes."""
    try:
        entries = json.loads(path.read_text())["data"]
        objects = [_box_object(i, e, T_aligned_world) for i, e in enumerate(entries)]
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise SceneError(path, f"bad 3dod annotation ({type(e).__name__}: {e})") from e
    return objects


def _box_object(index: int, entry: dict, T_aligned_world: np.ndarray) -> SceneObject:
    obb = entry["segments"]["obbAligned"]
    centre = np.asarray(obb["centroid"], np.float64).reshape(3)
    lengths = np.asarray(obb["axesLengths"], np.float64).reshape(3)
    axes_33 = np.asarray(obb["normalizedAxes"], np.float64).reshape(3, 3)  # row i: axis i
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    corners_world = (signs * lengths / 2) @ axes_33 + centre
    corners = corners_world @ T_aligned_world[:3, :3].T + T_aligned_world[:3, 3]
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    oid = entry.get("objectId")
    oid = int(oid) if isinstance(oid, int) or (isinstance(oid, str) and oid.isdigit()) else index
    return SceneObject(oid, str(entry["label"]), np.concatenate([(lo + hi) / 2, hi - lo]))


def room_alignment(mesh: Mesh | None) -> np.ndarray:
    """``T_aligned_world``: rotation about z by minus the dominant wall yaw (identity when
    there is no mesh or no wall)."""
    if mesh is None or len(mesh.faces_F3) == 0:
        return np.eye(4)
    yaw = dominant_wall_yaw(mesh.vertices_N3, mesh.faces_F3)
    return np.eye(4) if yaw is None else yaw_rotation_44(-yaw)


def load_scene(video_dir: Path) -> Scene:
    """Open one ARKitScenes 3DOD video folder (module docstring); its frames live inside it."""
    video_dir = Path(video_dir)
    mesh_file = mesh_path(video_dir) if mesh_path(video_dir).is_file() else None
    traj = frames_path(video_dir) / "lowres_wide.traj"
    if mesh_file is None and not traj.is_file():
        raise SceneError(video_dir, f"no {mesh_path(video_dir).name} and no {traj.name} (one of "
                                    "the videos shipped without 3dod assets): skip it")  # fmt: skip
    mesh = read_mesh(mesh_file) if mesh_file is not None else None
    T_aligned_world = room_alignment(mesh)
    frames = ArkitFrames(video_dir, traj) if traj.is_file() else None
    objects = (read_boxes(annotation_path(video_dir), T_aligned_world)
               if annotation_path(video_dir).is_file() else [])  # fmt: skip
    return Scene(scene_id_for(video_dir), video_dir, T_aligned_world, None, None, objects,
                 mesh_file, frames, read_mesh=read_mesh, dataset="arkitscenes")  # fmt: skip
