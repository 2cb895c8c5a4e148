"""ScanNet++ iPhone captures as a ``Scene``, read from the files as published.

A scene folder ``<root>/data/<scene_id>/`` (``find_scenes(<root>/data)`` lists them) holds:

- ``iphone/rgb.mkv``: the colour video; frame id = 0-based index in presentation order (what the
  official ``prepare_iphone_data.py`` names ``frame_%06d``). Decoded with PyAV, only the frames
  asked for (seek to the keyframe before, decode forward).
- ``iphone/depth.bin``: 256x192 depth per video frame, in either encoding of the official
  ``extract_depth`` (:class:`DepthStream`); millimetres, 0 = invalid.
- ``iphone/colmap/{cameras,images}.txt``: the ONLY pose source. ``images.txt`` holds world-to-camera
  ``QW QX QY QZ TX TY TZ`` (Hamilton quaternion, OpenCV camera axes) for the frames COLMAP
  registered, a subset of the video; the other frames are skipped and counted. The world is the
  frame of ``scans/mesh_aligned_0.05.ply`` (Z up, metres; the official renderer draws that mesh
  with these poses and no transform), so ``T_aligned_world`` is the identity.
- ``iphone/pose_intrinsic_imu.json``: its ``aligned_pose`` (camera-to-world) is only CHECKED
  against COLMAP (1 cm / 0.5 deg); disagreement is a warning in ``ScannetppSource.metadata``.
  ``iphone/nerfstudio/transforms.json`` is never read (its world axes are permuted).

Intrinsics: the iPhone camera is COLMAP ``OPENCV`` (fx fy cx cy k1 k2 p1 p2). The distortion is
IGNORED, as the official rasteriser does for the iPhone (``distort_params=None``); the ignored
coefficients are kept in the metadata. COLMAP puts the top-left pixel's centre at (0.5, 0.5), the
project (``core.geometry``) at (0, 0), so ``cx = cx_colmap - 0.5``; the depth image sees the same
field of view at 256x192, so its intrinsics are the colour ones scaled by 256/W, 192/H (in
COLMAP's convention, where scaling is exact).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.ids import folder_scene_id
from ross3d_data.core.records import Frame, Intrinsics
from ross3d_data.core.scene import Scene
from ross3d_data.datasets.meshes import read_mesh
from ross3d_data.datasets.scannetpp_depth import DEPTH_H, DEPTH_W, DepthStream
from ross3d_data.datasets.scannetpp_video import VideoFrames

__all__ = [
    "ScannetppSource",
    "is_scene_dir",
    "load_scene",
    "read_cameras_txt",
    "read_images_txt",
    "scene_id_for",
]

log = logging.getLogger(__name__)

MESH_FILE = "scans/mesh_aligned_0.05.ply"
POSE_TOL_M, POSE_TOL_DEG = 0.01, 0.5
# COLMAP's perspective camera models: (number of parameters, number of focal lengths); the
# parameters are f (or fx fy), cx, cy, then distortion coefficients (fisheye models: refused)
_PINHOLE_MODELS = {"SIMPLE_PINHOLE": (3, 1), "SIMPLE_RADIAL": (4, 1), "RADIAL": (5, 1),
                   "PINHOLE": (4, 2), "OPENCV": (8, 2), "FULL_OPENCV": (12, 2)}  # fmt: skip
_FRAME_NAME = re.compile(r"frame_(\d+)\.\w+$")


def _colmap_to_intrinsics(fx, fy, cx, cy, width: int, height: int) -> Intrinsics:
    """COLMAP pinhole (pixel centres at +0.5) -> project Intrinsics (pixel centres at 0)."""
    return Intrinsics(fx, fy, cx - 0.5, cy - 0.5, width, height)


def read_cameras_txt(path: Path) -> dict[int, tuple[str, int, int, list[float]]]:
    """``cameras.txt``: camera id -> (model, width, height, params)."""
    cams = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        try:
            cid, model, w, h = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
            params = [float(p) for p in parts[4:]]
        except (ValueError, IndexError) as err:
            raise SceneError(path, f"line {n}: not 'CAMERA_ID MODEL W H PARAMS' ({err})") from err
        cams[cid] = (model, w, h, params)
    if not cams:
        raise SceneError(path, "no camera")
    return cams


def _camera_intrinsics(path: Path, camera) -> tuple[Intrinsics, list[float]]:
    """(colour intrinsics, ignored distortion coefficients) of one camera."""
    model, w, h, params = camera
    n_params, n_focal = _PINHOLE_MODELS.get(model, (None, 0))
    if len(params) != n_params:
        raise SceneError(path, f"camera model {model} with {len(params)} parameters is not a "
                               f"perspective model ({', '.join(_PINHOLE_MODELS)})")  # fmt: skip
    fx, fy = (params[0], params[0]) if n_focal == 1 else (params[0], params[1])
    cx, cy = params[n_focal], params[n_focal + 1]
    return _colmap_to_intrinsics(fx, fy, cx, cy, w, h), params[n_focal + 2 :]


def rotation_from_quaternion_wxyz(q_4: np.ndarray) -> np.ndarray:
    """3x3 rotation of a Hamilton unit quaternion (w, x, y, z), as COLMAP's ``qvec2rotmat``."""
    w, x, y, z = q_4 / np.linalg.norm(q_4)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _T_world_cam(q_4: np.ndarray, t_3: np.ndarray) -> np.ndarray | None:
    """Camera-to-world of COLMAP's world-to-camera (q, t); None for a non-finite/zero q."""
    norm = float(np.linalg.norm(q_4))
    if not (np.isfinite(q_4).all() and np.isfinite(t_3).all() and norm > 1e-9):
        return None
    R_cam_world = rotation_from_quaternion_wxyz(q_4)
    T = np.eye(4)
    T[:3, :3] = R_cam_world.T
    T[:3, 3] = -R_cam_world.T @ t_3
    return T


def read_images_txt(path: Path) -> tuple[dict[int, np.ndarray], dict[int, int], list[int]]:
    """``images.txt`` -> (frame id -> camera-to-world 4x4, frame id -> camera id, frame ids whose
    pose is not finite). Each image line is followed by a points2D line (maybe empty), always
    consumed, as COLMAP's reader does. Frame id = the ``frame_NNNNNN`` number of NAME."""
    poses, cameras, invalid = {}, {}, []
    lines = path.read_text().splitlines()
    n = 0
    while n < len(lines):
        line, n = lines[n], n + 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        match = _FRAME_NAME.search(parts[-1]) if len(parts) >= 10 else None
        if match is None:
            raise SceneError(path, f"line {n}: not 'ID QW QX QY QZ TX TY TZ CAMERA_ID "
                                   "frame_NNNNNN.jpg'")  # fmt: skip
        try:
            values = np.array([float(v) for v in parts[1:8]])
            camera_id = int(parts[8])
        except ValueError as err:
            raise SceneError(path, f"line {n}: {err}") from err
        frame_id = int(match.group(1))
        if frame_id in cameras:
            raise SceneError(path, f"line {n}: frame {frame_id} is registered twice")
        n += 1  # the points2D line belongs to this image
        cameras[frame_id] = camera_id
        T = _T_world_cam(values[:4], values[4:])
        if T is None:
            invalid.append(frame_id)
        else:
            poses[frame_id] = T
    return poses, cameras, sorted(invalid)


def _pose_error(T_a: np.ndarray, T_b: np.ndarray) -> tuple[float, float]:
    """(translation distance in metres, rotation angle in degrees) between two 4x4 poses."""
    dt = float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3]))
    cos = (np.trace(T_a[:3, :3].T @ T_b[:3, :3]) - 1) / 2
    return dt, float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def check_aligned_poses(path: Path, poses: dict[int, np.ndarray]) -> dict:
    """Compare ``pose_intrinsic_imu.json``'s ``aligned_pose`` with the COLMAP poses.

    Returns ``{checked, missing, disagreeing, max_translation_m, max_rotation_deg, warnings}``;
    a pose disagrees beyond 1 cm or 0.5 deg. Never raises: the file is a cross-check only.
    """
    out = {"checked": 0, "missing": 0, "disagreeing": 0, "max_translation_m": 0.0,
           "max_rotation_deg": 0.0, "warnings": []}  # fmt: skip
    if not path.is_file():
        out["warnings"].append(f"{path.name} missing: COLMAP poses not cross-checked")
        return out
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        out["warnings"].append(f"{path}: unreadable ({err}); COLMAP poses not cross-checked")
        return out
    malformed, opengl = 0, 0
    for frame_id, T in sorted(poses.items()):
        entry = entries.get(f"frame_{frame_id:06d}") if isinstance(entries, dict) else None
        if not isinstance(entry, dict) or "aligned_pose" not in entry:
            out["missing"] += 1
            continue
        A = np.asarray(entry["aligned_pose"], dtype=np.float64)
        if A.shape != (4, 4) or not np.isfinite(A).all():
            malformed += 1
            continue
        dt, da = _pose_error(A, T)
        out["checked"] += 1
        out["max_translation_m"] = max(out["max_translation_m"], dt)
        out["max_rotation_deg"] = max(out["max_rotation_deg"], da)
        if dt > POSE_TOL_M or da > POSE_TOL_DEG:
            out["disagreeing"] += 1
            A_gl = A @ np.diag([1.0, -1.0, -1.0, 1.0])
            opengl += _pose_error(A_gl, T)[1] <= POSE_TOL_DEG
    _pose_warnings(out, path, malformed, opengl)
    return out


def _pose_warnings(out: dict, path: Path, malformed: int, opengl: int) -> None:
    if malformed:
        out["warnings"].append(f"{path.name}: {malformed} aligned_pose entries are not finite 4x4")
    if out["disagreeing"]:
        hint = " (their rotations agree after flipping camera y, z: OpenGL axes)" if opengl else ""
        out["warnings"].append(
            f"{path.name}: aligned_pose disagrees with COLMAP beyond {POSE_TOL_M * 100:g} cm / "
            f"{POSE_TOL_DEG:g} deg for {out['disagreeing']} of {out['checked']} frames (worst "
            f"{out['max_translation_m']:.3f} m, {out['max_rotation_deg']:.2f} deg){hint}"
        )


class ScannetppSource:
    """Frames of one ScanNet++ iPhone capture: colour from ``rgb.mkv``, depth from ``depth.bin``,
    poses from COLMAP only (module docstring). ``metadata``: camera model, ignored distortion,
    the ``aligned_pose`` cross-check and its warnings, frame counts (after ``skipped_frame_ids``).
    """

    def __init__(self, iphone_dir: Path, poses: dict[int, np.ndarray], invalid: list[int],
                 video: VideoFrames, depth: DepthStream, metadata: dict) -> None:  # fmt: skip
        self.path = iphone_dir
        self._poses, self._invalid = poses, invalid
        self.video, self.depth = video, depth
        self.metadata = metadata
        self._kept: list[int] | None = None
        self._kept_set: set[int] = set()

    def frame_ids(self) -> list[int]:
        """Registered frames with a finite pose that the video and depth.bin both hold."""
        if self._kept is None:
            n_video = self.video.count()
            n_depth = self.depth.count(wanted=set(self._poses))
            self._kept = sorted(f for f in self._poses if f < min(n_video, n_depth))
            self._kept_set = set(self._kept)
            self.metadata["frames"] = {
                "video": n_video, "depth": n_depth, "kept": len(self._kept),
                "registered_invalid_pose": len(self._invalid),
                "registered_beyond_video_or_depth": len(self._poses) - len(self._kept),
            }  # fmt: skip
        return list(self._kept)

    def skipped_frame_ids(self) -> list[int]:
        """Video frames without a usable COLMAP pose (not registered, non-finite pose), and
        registered frames the video or depth.bin lacks."""
        kept = set(self.frame_ids())
        every = set(range(self.video.count())) | set(self._poses) | set(self._invalid)
        return sorted(every - kept)

    def _check(self, frame_id: int) -> None:
        self.frame_ids()
        if frame_id not in self._kept_set:
            raise SceneError(self.path / "colmap" / "images.txt",
                             f"frame {frame_id} is not a registered frame with colour and depth")  # fmt: skip

    def pose(self, frame_id: int) -> np.ndarray:
        self._check(frame_id)
        return self._poses[frame_id].copy()

    def load_frame(self, frame_id: int) -> Frame:
        self._check(frame_id)
        color = self.video.read(frame_id)
        return Frame(frame_id, color, self.depth.read(frame_id), self._poses[frame_id].copy())


def depth_intrinsics(color_K: Intrinsics) -> Intrinsics:
    """The 256x192 depth image's intrinsics: the colour ones scaled, in COLMAP's convention
    (pixel centres at +0.5, where scaling the image scales the coordinates exactly)."""
    sx, sy = DEPTH_W / color_K.width, DEPTH_H / color_K.height
    cx_colmap, cy_colmap = color_K.cx + 0.5, color_K.cy + 0.5
    return _colmap_to_intrinsics(color_K.fx * sx, color_K.fy * sy, cx_colmap * sx,
                                 cy_colmap * sy, DEPTH_W, DEPTH_H)  # fmt: skip


def _open_source(iphone: Path) -> tuple[ScannetppSource, Intrinsics, Intrinsics]:
    colmap = iphone / "colmap"
    for name in ("cameras.txt", "images.txt"):
        if not (colmap / name).is_file():
            raise SceneError(colmap / name, "missing: ScanNet++ iPhone frames are posed by COLMAP "
                                            "only (nerfstudio/transforms.json is not read)")  # fmt: skip
    cams = read_cameras_txt(colmap / "cameras.txt")
    poses, camera_of, invalid = read_images_txt(colmap / "images.txt")
    used = sorted(set(camera_of.values()))
    if not used or any(c not in cams for c in used):
        raise SceneError(colmap / "images.txt", f"images use cameras {used}, cameras.txt has "
                                                f"{sorted(cams)}")  # fmt: skip
    intrinsics = {c: _camera_intrinsics(colmap / "cameras.txt", cams[c]) for c in used}
    color_K, distortion = intrinsics[used[0]]
    if len({k for k, _ in intrinsics.values()}) > 1:
        raise SceneError(colmap / "cameras.txt", f"images use {len(used)} cameras with different "
                                                 "intrinsics; one iPhone camera expected")  # fmt: skip
    video = VideoFrames(iphone / "rgb.mkv")
    if (video.width, video.height) != (color_K.width, color_K.height):
        raise SceneError(iphone / "rgb.mkv", f"video is {video.width}x{video.height} but "
                         f"cameras.txt says {color_K.width}x{color_K.height}")  # fmt: skip
    depth = DepthStream(iphone / "depth.bin")
    check = check_aligned_poses(iphone / "pose_intrinsic_imu.json", poses)
    for warning in check["warnings"]:
        log.warning("%s", warning)
    meta = {"camera_model": cams[used[0]][0], "distortion_ignored": distortion,
            "depth_encoding": depth.encoding, "aligned_pose_check": check,
            "warnings": list(check["warnings"])}  # fmt: skip
    source = ScannetppSource(iphone, poses, invalid, video, depth, meta)
    return source, color_K, depth_intrinsics(color_K)


def is_scene_dir(path: Path) -> bool:
    """A ScanNet++ scene folder: ``iphone/rgb.mkv`` or ``scans/mesh_aligned_0.05.ply``."""
    path = Path(path)
    return (path / "iphone" / "rgb.mkv").is_file() or (path / MESH_FILE).is_file()


def scene_id_for(scene_dir: Path) -> str:
    """``scannetpp-<folder name>`` (``core.ids``; ScanNet++ ids are 10 hex digits)."""
    return folder_scene_id("scannetpp", scene_dir)


def load_scene(scene_dir: Path) -> Scene:
    """Open a ScanNet++ scene folder; scene id ``scannetpp-<folder name>``, no objects.

    Frames come from ``iphone/`` when it holds ``rgb.mkv`` (then COLMAP's files and
    ``depth.bin`` are required); a folder with only the mesh is a mesh-only scene.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise SceneError(scene_dir, "scene directory not found")
    mesh_file = scene_dir / MESH_FILE if (scene_dir / MESH_FILE).is_file() else None
    iphone = scene_dir / "iphone"
    src, color_K, depth_K = None, None, None
    if (iphone / "rgb.mkv").is_file():
        src, color_K, depth_K = _open_source(iphone)
    elif mesh_file is None:
        raise SceneError(scene_dir, f"not a ScanNet++ scene: no iphone/rgb.mkv and no {MESH_FILE}")
    return Scene(scene_id_for(scene_dir), scene_dir, np.eye(4), color_K, depth_K, [],
                 mesh_file, src, read_mesh if mesh_file else None, dataset="scannetpp")  # fmt: skip
