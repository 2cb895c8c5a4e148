"""MultiScan scans (smartscenes/multiscan) as a ``Scene``.

Published layout of one scan ``scene_xxxxx_xx/`` (docs ``dataset/index.rst``), all files named
after the folder:

* ``<scan>.mp4``: H.264 colour (1920x1440 on iOS), frame ``i`` = the i-th frame in presentation
  order (decoded with PyAV: seek to the key frame before a kept frame, decode from there,
  ``scannetpp_video.VideoFrames``).
* ``<scan>.depth.zlib``: one raw-deflate stream of float16 metres, 256x192 per frame
  (``multiscan_depth.DepthStream``); ``<scan>.json`` metadata may give another size
  (``streams[1].resolution = [H, W]``) or ``depth_unit = "mm"`` (uint16, Android).
* ``<scan>.jsonl``: line ``i`` describes frame ``i``: ``timestamp`` (ns), ``intrinsics`` (9,
  column-major, at the colour size) and ``transform`` (16, column-major camera-to-world in ARKit
  axes: x right, y up, z backwards; the raw, gravity-aligned ARKit world, Y up, metres).
  OpenCV axes: ``T @ diag(1, -1, -1, 1)`` (``bridge.py``). A frame with a non-finite transform is
  skipped and counted. The depth intrinsics scale the colour ones by the size ratio (pixel centres
  at integer coordinates, ``core.geometry.resize_crop_intrinsics``; the official code scales
  ``cx`` as well, which differs by under half a depth pixel).
* ``<scan>.align.json``: ``coordinate_transform`` (16, column-major) maps the ALIGNED frame of
  the released mesh back to the raw camera world (docs ``output.rst``;
  ``multiscan_poses_to_mvs_texturing_poses.py`` moves cameras by its inverse), so
  ``T_aligned_world = inv(coordinate_transform)``.
* ``<scan>.ply``: the mesh, already aligned (Z up, floor at z = 0, metres); ``Scene`` wants the
  raw frame from ``read_mesh``, so it is mapped back by ``coordinate_transform`` when read.

The jsonl, the depth stream and the video must hold the same number of frames (one line per
frame); a mismatch is a SceneError naming the file.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.geometry import resize_crop_intrinsics
from ross3d_data.core.ids import folder_scene_id
from ross3d_data.core.records import Frame, Intrinsics, Mesh, pose_is_valid
from ross3d_data.core.scene import Scene
from ross3d_data.datasets.meshes import read_mesh
from ross3d_data.datasets.multiscan_depth import DepthStream
from ross3d_data.datasets.scannetpp_video import VideoFrames

DATASET = "multiscan"
DEPTH_SIZE_HW = (192, 256)  # iOS LiDAR depth when the metadata does not say
ARKIT_TO_OPENCV_44 = np.diag([1.0, -1.0, -1.0, 1.0])  # camera axes: y up / z back -> y down / z fwd
RIGID_TOLERANCE = 1e-4


def scan_file(scan_dir: Path, suffix: str) -> Path:
    """``<scan_dir>/<scan>.<suffix>`` (every file is named after the folder)."""
    return scan_dir / f"{scan_dir.name}.{suffix}"


def _column_major(values, shape: int, where: Path, what: str) -> np.ndarray:
    try:
        M = np.asarray(values, np.float64)
    except (TypeError, ValueError) as err:
        raise SceneError(where, f"{what}: not a list of numbers") from err
    if M.shape != (shape * shape,):
        raise SceneError(where, f"{what}: expected {shape * shape} numbers, got {M.size}")
    return M.reshape(shape, shape, order="F")


class Cameras:
    """``<scan>.jsonl``: per-frame timestamps (ns), colour K (3x3) and ARKit camera-to-world."""

    def __init__(self, path: Path, fallback_K_33: np.ndarray | None = None) -> None:
        if not path.is_file():
            raise SceneError(path, "missing")
        self.path = path
        timestamps, Ks, Ts = [], [], []
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        for i, line in enumerate(lines):
            where = Path(f"{path}:{i + 1}")
            try:
                record = json.loads(line)
                timestamps.append(int(record["timestamp"]))
                T = record["transform"]
            except (ValueError, KeyError, TypeError) as err:
                raise SceneError(
                    where, f"not a camera record: {type(err).__name__}: {err}"
                ) from err
            if "intrinsics" in record:
                Ks.append(_column_major(record["intrinsics"], 3, where, "intrinsics"))
            elif fallback_K_33 is not None:  # the metadata's colour stream (bridge.py)
                Ks.append(fallback_K_33)
            else:
                raise SceneError(where, "no intrinsics and no metadata intrinsics to fall back on")
            Ts.append(_column_major(T, 4, where, "transform"))
        if not lines:
            raise SceneError(path, "no camera records")
        self.timestamps_ns = timestamps
        self.K_color_N33 = np.stack(Ks)
        self.T_arkit_N44 = np.stack(Ts)

    def __len__(self) -> int:
        return len(self.timestamps_ns)

    def T_world_cam(self, frame_id: int) -> np.ndarray:
        """Raw-world camera-to-world in OpenCV camera axes."""
        return self.T_arkit_N44[frame_id] @ ARKIT_TO_OPENCV_44


def read_metadata(path: Path) -> dict:
    """``<scan>.json`` (optional): ``{}`` when absent; SceneError when unreadable."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SceneError(path, f"not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise SceneError(path, "expected a JSON object")
    return meta


def _depth_layout(meta: dict, where: Path) -> tuple[int, int, str, np.ndarray | None]:
    """(depth H, W, unit, colour K fallback) from the metadata's ordered ``streams``."""
    streams = meta.get("streams", [])
    try:
        h, w = (int(v) for v in streams[1]["resolution"]) if len(streams) > 1 else DEPTH_SIZE_HW
        K = streams[0].get("intrinsics") if streams else None
        K_33 = _column_major(K, 3, where, "streams[0].intrinsics") if K is not None else None
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise SceneError(where, f"bad streams entry: {type(err).__name__}: {err}") from err
    unit = meta.get("depth_unit", "m")
    if unit not in ("m", "mm"):
        raise SceneError(where, f"depth_unit must be 'm' or 'mm', got {unit!r}")
    return h, w, unit, K_33


def read_alignment(path: Path) -> np.ndarray:
    """``T_raw_aligned`` = ``coordinate_transform`` of ``<scan>.align.json`` (rigid, checked)."""
    if not path.is_file():
        raise SceneError(path, "missing (the mesh is aligned, the cameras are not)")
    try:
        values = json.loads(path.read_text())["coordinate_transform"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SceneError(path, f"no coordinate_transform: {type(err).__name__}: {err}") from err
    M = _column_major(values, 4, path, "coordinate_transform")
    R = M[:3, :3]
    rigid = np.abs(R.T @ R - np.eye(3)).max() < RIGID_TOLERANCE and np.linalg.det(R) > 0
    if not (np.isfinite(M).all() and rigid and np.allclose(M[3], [0, 0, 0, 1])):
        raise SceneError(path, "coordinate_transform is not a rigid 4x4 transform")
    return M


class MultiScanFrames:
    """Frames of one scan (``FrameSource`` with per-frame intrinsics); ids = jsonl line index."""

    def __init__(self, scan_dir: Path, cameras: Cameras, depth: DepthStream, video: VideoFrames):
        self.path = scan_dir
        self.cameras, self.depth, self.video = cameras, depth, video
        self._valid = [i for i in range(len(cameras)) if pose_is_valid(cameras.T_arkit_N44[i])]

    def frame_ids(self) -> list[int]:
        return list(self._valid)

    def skipped_frame_ids(self) -> list[int]:
        """Frames whose ``transform`` has a NaN or inf."""
        valid = set(self._valid)
        return [i for i in range(len(self.cameras)) if i not in valid]

    def _check(self, frame_id: int) -> None:
        if not 0 <= frame_id < len(self.cameras):
            raise SceneError(
                self.cameras.path, f"frame {frame_id} not in its {len(self.cameras)} lines"
            )

    def timestamp_ns(self, frame_id: int) -> int:
        """The frame's ARKit timestamp (device uptime, nanoseconds)."""
        self._check(frame_id)
        return self.cameras.timestamps_ns[frame_id]

    def pose(self, frame_id: int) -> np.ndarray:
        """Raw-world camera-to-world, OpenCV camera axes."""
        self._check(frame_id)
        return self.cameras.T_world_cam(frame_id)

    def intrinsics(self, frame_id: int) -> tuple[Intrinsics, Intrinsics]:
        """(colour, depth) intrinsics of one frame (ARKit's vary slightly from frame to frame)."""
        self._check(frame_id)
        K = self.cameras.K_color_N33[frame_id]
        color = Intrinsics.from_matrix(K, self.video.width, self.video.height)
        sx, sy = self.depth.width / self.video.width, self.depth.height / self.video.height
        K_depth = resize_crop_intrinsics(K, sx, sy)
        return color, Intrinsics.from_matrix(K_depth, self.depth.width, self.depth.height)

    def load_frame(self, frame_id: int) -> Frame:
        """Colour (RGB, video size), depth (uint16 mm) and raw pose of one frame."""
        T = self.pose(frame_id)
        return Frame(frame_id, self.video.read(frame_id), self.depth.read_mm(frame_id), T)


def _check_counts(cameras: Cameras, depth: DepthStream, video: VideoFrames) -> None:
    n = len(cameras)
    if depth.count() != n:
        raise SceneError(depth.path, f"holds {depth.count()} depth frames but "
                         f"{cameras.path.name} has {n} camera lines")  # fmt: skip
    if video.count() != n:
        raise SceneError(video.path, f"holds {video.count()} video frames but "
                         f"{cameras.path.name} has {n} camera lines")  # fmt: skip


def _read_mesh_raw(path: Path, T_raw_aligned: np.ndarray) -> Mesh:
    """The released (aligned) mesh mapped back to the raw camera world."""
    return read_mesh(path).transformed(T_raw_aligned)


def scene_id_for(scan_dir: Path) -> str:
    """``multiscan-<scan>`` (``core.ids``; ``scene_xxxxx_xx`` holds no dot)."""
    return folder_scene_id(DATASET, scan_dir)


def is_scene_dir(path: Path) -> bool:
    """A MultiScan scan folder: ``<scan>.jsonl``, ``<scan>.depth.zlib`` or ``<scan>.align.json``."""
    path = Path(path)
    return any(scan_file(path, s).is_file() for s in ("jsonl", "depth.zlib", "align.json"))


def load_scene(scan_dir: Path) -> Scene:
    """Open a MultiScan scan folder (module docstring); scene id ``multiscan-<scan>``.

    Inflates the depth stream once (frame count, checkpoints) and indexes the video's packets.
    """
    scan_dir = Path(scan_dir)
    if not scan_dir.is_dir():
        raise SceneError(scan_dir, "scan directory not found")
    scene_id = scene_id_for(scan_dir)
    meta_path = scan_file(scan_dir, "json")
    h, w, unit, K_fallback = _depth_layout(read_metadata(meta_path), meta_path)
    T_raw_aligned = read_alignment(scan_file(scan_dir, "align.json"))
    cameras = Cameras(scan_file(scan_dir, "jsonl"), K_fallback)
    depth = DepthStream(scan_file(scan_dir, "depth.zlib"), h, w, unit)
    video = VideoFrames(scan_file(scan_dir, "mp4"))
    _check_counts(cameras, depth, video)
    frames = MultiScanFrames(scan_dir, cameras, depth, video)
    first = frames.frame_ids()[0] if frames.frame_ids() else 0
    color_K, depth_K = frames.intrinsics(first)
    mesh_file = scan_file(scan_dir, "ply")
    return Scene(
        scene_id,
        scan_dir,
        np.linalg.inv(T_raw_aligned),
        color_K,
        depth_K,
        [],
        mesh_file if mesh_file.is_file() else None,
        frames,
        partial(_read_mesh_raw, T_raw_aligned=T_raw_aligned),
        dataset=DATASET,
    )
