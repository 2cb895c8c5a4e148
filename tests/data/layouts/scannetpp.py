"""A synthetic ScanNet++ iPhone capture in the published layout (scannetpp/scannetpp), ray-cast
from a demo room, with everything a reader must recover known exactly.

``write_scannetpp_scene(root, scene_id, ...)`` writes ``<root>/data/<scene_id>/``:

- ``scans/mesh_aligned_0.05.ply``: the demo room (floor z = 0) turned by ``YAW_DEG`` about z and
  shifted into the first octant (ScanNet++'s rough PCA alignment), binary PLY, metres.
- ``iphone/rgb.mkv``: H.264 at 60 fps, small keyframe interval and B-frames (so a reader must
  seek and reorder), ``N_FRAMES`` frames of ``COLOR_K``'s size.
- ``iphone/depth.bin``: 256x192 per frame, encoding ``lz4`` (per-frame lz4 blocks of uint16
  mm), ``deflate`` (per-frame raw deflate of float32 metres) or ``stream`` (one raw-deflate stream
  of float32 metres), exactly as ``prepare_iphone_data.extract_depth`` reads them.
- ``iphone/colmap/{cameras,images,points3D}.txt``: one OPENCV camera (zero distortion), the
  world-to-camera poses of every frame except ``UNREGISTERED``, in shuffled order, with image
  ids unrelated to the frame numbers and a points2D line after each image (one not empty).
- ``iphone/pose_intrinsic_imu.json``: every frame's ``aligned_pose`` (camera-to-world, OpenCV
  axes); ``misaligned`` frames get theirs moved by ``MISALIGN_M``.
- ``iphone/nerfstudio/transforms.json``: a DECOY for every frame (nerfstudio's OpenGL camera and
  permuted world axes), which a reader must not use.

COLMAP's intrinsics put pixel centres at +0.5, which is what the ray caster shoots through, so
the written camera is exactly the one rendered with.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ross3d_data.core.records import Intrinsics, Mesh
from ross3d_data.synthetic.raycast import MeshRaycaster
from ross3d_data.synthetic.scenes import build_room, demo_layout, demo_trajectory
from scipy.spatial.transform import Rotation

# COLMAP convention (top-left pixel centre at 0.5, 0.5); 4:3 like the iPhone's 1920x1440
COLOR_K = Intrinsics(252.0, 251.0, 161.3, 119.6, 320, 240)
DEPTH_W, DEPTH_H = 256, 192
N_FRAMES = 24
UNREGISTERED = (3, 10, 11, 19)
YAW_DEG = 8.0
T_WORLD_ROOM_T = (3.4, 2.9, 0.0)  # the room's centre in the first octant
MISALIGN_M = 0.03
FPS = 60


@dataclass(frozen=True)
class ScannetppTruth:
    """What the generator knows (the world = the mesh_aligned frame)."""

    scene_dir: Path
    T_world_cam: np.ndarray  # (N_FRAMES, 4, 4) camera-to-world, OpenCV axes, every video frame
    registered: tuple[int, ...]
    color: np.ndarray  # (N_FRAMES, H, W, 3) uint8, the images encoded into rgb.mkv
    depth_mm: np.ndarray  # (N_FRAMES, 192, 256) uint16, what depth.bin holds
    mesh_world: Mesh
    depth_K: Intrinsics  # COLMAP convention, as rendered


def depth_intrinsics_colmap() -> Intrinsics:
    sx, sy = DEPTH_W / COLOR_K.width, DEPTH_H / COLOR_K.height
    return Intrinsics(COLOR_K.fx * sx, COLOR_K.fy * sy, COLOR_K.cx * sx, COLOR_K.cy * sy,
                      DEPTH_W, DEPTH_H)  # fmt: skip


def _yaw(deg: float, t) -> np.ndarray:
    a = np.deg2rad(deg)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    T[:3, 3] = t
    return T


def quaternion_wxyz(R: np.ndarray) -> np.ndarray:
    """Hamilton unit quaternion (w, x, y, z) of a rotation matrix, w >= 0 (scipy's)."""
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


def write_mesh_ply(path: Path, mesh: Mesh) -> None:
    """Binary PLY: float x y z, uchar red green blue; ``list uchar int vertex_indices``."""
    n, f = len(mesh.vertices_N3), len(mesh.faces_F3)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment synthetic ScanNet++ mesh_aligned_0.05\n"
        f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {f}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    v = np.empty(n, np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)]))
    v["xyz"], v["rgb"] = mesh.vertices_N3, mesh.colors_N3
    faces = np.empty(f, np.dtype([("n", "u1"), ("idx", "<i4", 3)]))
    faces["n"], faces["idx"] = 3, mesh.faces_F3
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + v.tobytes() + faces.tobytes())


def write_video(path: Path, frames_NHW3: np.ndarray, crf: int = 10) -> None:
    """H.264 (yuv420p, as phone video) in Matroska; keyframe every 6 frames, B-frames on."""
    import av

    h, w = frames_NHW3.shape[1:3]
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "g": "6", "bf": "2", "preset": "fast"}
        for image in frames_NHW3:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def depth_bin_bytes(depth_mm_NHW: np.ndarray, encoding: str) -> bytes:
    """``depth.bin`` in one of the encodings ``extract_depth`` reads (module docstring)."""
    metres = [(d.astype(np.float64) / 1000.0).astype("<f4") for d in depth_mm_NHW]
    if encoding == "stream":
        co = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return co.compress(b"".join(m.tobytes() for m in metres)) + co.flush()
    out = bytearray()
    for mm, m in zip(depth_mm_NHW, metres, strict=True):
        if encoding == "lz4":  # no stored size: the reader passes uncompressed_size
            import lz4.block

            payload = lz4.block.compress(mm.astype("<u2").tobytes(), store_size=False)
        elif encoding == "deflate":
            co = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            payload = co.compress(m.tobytes()) + co.flush()
        else:
            raise ValueError(f"unknown depth encoding {encoding!r}")
        out += struct.pack("<I", len(payload)) + payload
    return bytes(out)


def _colmap_files(colmap: Path, T_world_cam: np.ndarray, registered: list[int], seed: int) -> None:
    colmap.mkdir(parents=True, exist_ok=True)
    K = COLOR_K
    colmap.joinpath("cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n"
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n# Number of cameras: 1\n"
        f"1 OPENCV {K.width} {K.height} {K.fx!r} {K.fy!r} {K.cx!r} {K.cy!r} 0 0 0 0\n"
    )
    order = np.random.default_rng(seed).permutation(registered)
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(order)}, mean observations per image: 0"]  # fmt: skip
    for k, frame_id in enumerate(order):
        T_cam_world = np.linalg.inv(T_world_cam[frame_id])
        q, t = quaternion_wxyz(T_cam_world[:3, :3]), T_cam_world[:3, 3]
        values = " ".join(f"{x:.17g}" for x in (*q, *t))
        lines.append(f"{100 + 7 * k} {values} 1 frame_{frame_id:06d}.jpg")
        lines.append("12.5 33.25 -1 40.0 7.5 -1" if k == 2 else "")
    colmap.joinpath("images.txt").write_text("\n".join(lines) + "\n")
    colmap.joinpath("points3D.txt").write_text(
        "# 3D point list with one line of data per point:\n# Number of points: 0\n"
    )


def _pose_json(path: Path, T_world_cam: np.ndarray, misaligned: tuple[int, ...]) -> None:
    K = COLOR_K
    entries = {}
    for i, T in enumerate(T_world_cam):
        aligned = T.copy()
        if i in misaligned:
            aligned[:3, 3] += [MISALIGN_M, 0.0, 0.0]
        raw = _yaw(-50.0, (1.0, -2.0, 0.5)) @ T  # ARKit's own world: NOT the mesh frame
        entries[f"frame_{i:06d}"] = {
            "timestamp": 1234.5 + i / FPS,
            "intrinsic": [[K.fx, 0.0, K.cx], [0.0, K.fy, K.cy], [0.0, 0.0, 1.0]],
            "pose": raw.tolist(),
            "aligned_pose": aligned.tolist(),
            "imu": {"gravity": [0.0, -9.81, 0.0]},
        }
    path.write_text(json.dumps(entries))


def _decoy_transforms(path: Path, T_world_cam: np.ndarray) -> None:
    """nerfstudio's convert_frames: OpenGL camera, world rows swapped (x, y) and z negated."""
    frames = []
    for i, T in enumerate(T_world_cam):
        c2w = T.copy()
        c2w[0:3, 1:3] *= -1
        c2w = c2w[[1, 0, 2, 3], :]
        c2w[2, :] *= -1
        frames.append({"file_path": f"frame_{i:06d}.jpg", "transform_matrix": c2w.tolist()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"camera_model": "OPENCV", "frames": frames}))


def write_scannetpp_scene(root: Path, scene_id: str, encoding: str = "lz4", index: int = 0,
                          misaligned: tuple[int, ...] = ()) -> ScannetppTruth:  # fmt: skip
    """Write ``<root>/data/<scene_id>/`` (module docstring) and return its ground truth."""
    scene_dir = Path(root) / "data" / scene_id
    iphone = scene_dir / "iphone"
    iphone.mkdir(parents=True)
    mesh_room, _, _ = build_room(demo_layout(index), np.random.default_rng([index, 1]))
    T_world_room = _yaw(YAW_DEG, T_WORLD_ROOM_T)
    mesh_world = mesh_room.transformed(T_world_room)
    write_mesh_ply(scene_dir / "scans" / "mesh_aligned_0.05.ply", mesh_world)
    T_world_cam = T_world_room @ demo_trajectory(N_FRAMES, index)
    caster, depth_K = MeshRaycaster(mesh_world), depth_intrinsics_colmap()
    color = np.stack([caster.render(COLOR_K, T)[0] for T in T_world_cam])
    depth = np.stack([caster.render(depth_K, T)[1] for T in T_world_cam])
    write_video(iphone / "rgb.mkv", color)
    (iphone / "depth.bin").write_bytes(depth_bin_bytes(depth, encoding))
    registered = [i for i in range(N_FRAMES) if i not in UNREGISTERED]
    _colmap_files(iphone / "colmap", T_world_cam, registered, seed=index)
    _pose_json(iphone / "pose_intrinsic_imu.json", T_world_cam, misaligned)
    _decoy_transforms(iphone / "nerfstudio" / "transforms.json", T_world_cam)
    return ScannetppTruth(scene_dir, T_world_cam, tuple(registered), color, depth, mesh_world,
                          depth_K)  # fmt: skip
