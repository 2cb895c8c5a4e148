"""MultiScan scans in the published layout (smartscenes/multiscan), ray-cast from a demo room.

``write_multiscan_scan`` writes ``<root>/<scan>/<scan>.*`` as the iOS app and the server do:
``.mp4`` (H.264 through PyAV; lossless ``libx264rgb``, short key-frame interval and B-frames so
that reading a frame needs seeking and reordering), ``.depth.zlib`` (one raw-deflate stream of
float16 metres, 256x192, 0 where the ray misses), ``.confidence.zlib`` (uint8, all 2),
``.jsonl`` (per frame ``timestamp`` ns, column-major ``intrinsics`` at the colour size and
column-major ARKit camera-to-world ``transform`` in the raw Y-up world), ``.json`` metadata,
``.align.json`` (``coordinate_transform`` = aligned -> raw) and ``.ply`` (the aligned mesh,
binary little-endian, MultiScan's vertex and face properties).

The room is built in the aligned frame (z up, floor z = 0); the raw ARKit world is Y up:
``T_raw_aligned`` turns aligned +Z into raw +Y, plus a yaw and a translation. Intrinsics use
the project's convention (integer pixel centres); the ray caster gets ``cx + 0.5, cy + 0.5``.
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ross3d_data.core.geometry import resize_crop_intrinsics
from ross3d_data.core.records import Intrinsics, Mesh
from ross3d_data.synthetic.raycast import MeshRaycaster
from ross3d_data.synthetic.scenes import build_room, demo_layout, demo_trajectory

COLOR_SIZE = (640, 480)  # width, height: 1920x1440 / 3, the same 4:3 as the iPhone's
DEPTH_SIZE = (256, 192)
FPS = 60
ARKIT_FROM_OPENCV_44 = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class MultiScanTruth:
    """What the generator knows about one scan."""

    scan_dir: Path
    T_raw_aligned: np.ndarray  # coordinate_transform
    T_aligned_cam: np.ndarray  # (n, 4, 4) OpenCV axes
    K_color: list[Intrinsics]  # per frame, colour size
    K_depth: list[Intrinsics]  # per frame, depth size
    timestamps_ns: list[int]
    invalid: tuple[int, ...]
    mesh_aligned: Mesh
    colors: np.ndarray  # (n, H, W, 3) uint8 rendered colour, as encoded
    depth_f16: np.ndarray  # (n, 192, 256) float16 metres, as written


def raw_from_aligned(yaw_deg: float = 35.0, translation=(0.7, -1.1, 0.4)) -> np.ndarray:
    """Aligned (z up) -> raw ARKit world (y up): a yaw about aligned z, then z -> y, then t."""
    a = np.deg2rad(yaw_deg)
    yaw = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    z_to_y = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # rotation by -90 deg about x
    T = np.eye(4)
    T[:3, :3] = z_to_y @ yaw
    T[:3, 3] = translation
    return T


def caster_intrinsics(K: Intrinsics) -> Intrinsics:
    """``K`` for ``MeshRaycaster``, whose pixel ``u`` ray passes through ``u + 0.5``."""
    return Intrinsics(K.fx, K.fy, K.cx + 0.5, K.cy + 0.5, K.width, K.height)


def frame_intrinsics(i: int) -> tuple[Intrinsics, Intrinsics]:
    """Colour K of frame ``i`` (ARKit's focal length drifts a little) and its depth K."""
    w, h = COLOR_SIZE
    K = Intrinsics(537.9 + 0.3 * i, 537.9 + 0.3 * i, 313.8, 242.3, w, h)
    Kd = resize_crop_intrinsics(K.K_33, DEPTH_SIZE[0] / w, DEPTH_SIZE[1] / h)
    return K, Intrinsics.from_matrix(Kd, *DEPTH_SIZE)


def write_mp4(path: Path, frames_NHW3: np.ndarray) -> None:
    """Lossless H.264 (RGB), a key frame every 4 frames, up to 2 B-frames, 60 fps."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=FPS)
        stream.width, stream.height = frames_NHW3.shape[2], frames_NHW3.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"crf": "0", "g": "4", "bf": "2", "preset": "ultrafast"}
        for rgb in frames_NHW3:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def raw_deflate(data: bytes) -> bytes:
    """One raw-deflate (RFC 1951) stream, as Apple's COMPRESSION_ZLIB writes it."""
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


def write_multiscan_ply(path: Path, mesh: Mesh) -> None:
    """Binary little-endian PLY with MultiScan's properties (annotation.rst)."""
    v = np.zeros(len(mesh.vertices_N3), [("xyz", "<f8", 3), ("n", "<f8", 3), ("rgba", "u1", 4)])
    v["xyz"] = mesh.vertices_N3
    v["n"] = [0.0, 0.0, 1.0]
    v["rgba"][:, :3], v["rgba"][:, 3] = mesh.colors_N3, 255
    f = np.zeros(
        len(mesh.faces_F3), [("n", "u1"), ("idx", "<i4", 3), ("obj", "<u2"), ("part", "<u2")]
    )
    f["n"], f["idx"] = 3, mesh.faces_F3
    header = [
        "ply", "format binary_little_endian 1.0", f"element vertex {len(v)}",
        *[f"property double {p}" for p in ("x", "y", "z", "nx", "ny", "nz")],
        *[f"property uchar {p}" for p in ("red", "green", "blue", "alpha")],
        f"element face {len(f)}", "property list uchar int vertex_indices",
        "property ushort objectId", "property ushort partId", "end_header",
    ]  # fmt: skip
    path.write_bytes(("\n".join(header) + "\n").encode() + v.tobytes() + f.tobytes())


def _camera_line(t_ns: int, K: Intrinsics, T_arkit: np.ndarray) -> str:
    return json.dumps({
        "timestamp": t_ns,
        "intrinsics": K.K_33.reshape(-1, order="F").tolist(),
        "transform": T_arkit.reshape(-1, order="F").tolist(),
        "euler_angles": [0.0, 0.0, 0.0],
        "exposure_duration": 8_333_333,
    })  # fmt: skip


def _metadata(n: int) -> dict:
    w, h = COLOR_SIZE
    K0 = frame_intrinsics(0)[0].K_33.reshape(-1, order="F").tolist()
    streams = [
        {"id": "color_back_1", "type": "color_camera", "encoding": "h264", "frequency": FPS,
         "resolution": [h, w], "number_of_frames": n, "file_extension": "mp4", "intrinsics": K0},
        {"id": "depth_back_1", "type": "lidar_sensor", "encoding": "float16_zlib",
         "frequency": FPS, "resolution": [DEPTH_SIZE[1], DEPTH_SIZE[0]], "number_of_frames": n,
         "file_extension": "depth.zlib"},
        {"id": "confidence_map", "encoding": "uint8_zlib", "frequency": FPS, "number_of_frames": n,
         "file_extension": "confidence.zlib"},
        {"id": "camera_info_color_back_1", "encoding": "jsonl", "frequency": FPS,
         "number_of_frames": n, "file_extension": "jsonl"},
    ]  # fmt: skip
    return {"streams": streams, "number_of_files": 5, "depth_unit": "m",
            "device": {"type": "iPhone"}}  # fmt: skip


def write_multiscan_scan(
    root: Path, scan: str = "scene_00042_01", n_frames: int = 10, invalid=(4,), index: int = 0
) -> MultiScanTruth:
    """Write one scan ``root/scan`` (module docstring); returns the ground truth."""
    scan_dir = Path(root) / scan
    if scan_dir.exists():
        shutil.rmtree(scan_dir)
    scan_dir.mkdir(parents=True)
    mesh, _, _ = build_room(demo_layout(index), np.random.default_rng([index, 11]))
    M = raw_from_aligned()
    caster = MeshRaycaster(mesh.transformed(M))  # render in the raw world the cameras live in
    poses = demo_trajectory(n_frames, index)
    Ks = [frame_intrinsics(i) for i in range(n_frames)]
    stamps = [1_000_000_000 + 16_666_667 * i for i in range(n_frames)]
    colors, depths, lines = [], [], []
    for i, T_aligned_cam in enumerate(poses):
        T_raw = M @ T_aligned_cam
        colors.append(caster.render(caster_intrinsics(Ks[i][0]), T_raw)[0])
        d = caster.cast(caster_intrinsics(Ks[i][1]), T_raw)["depth_HW"]
        depths.append(np.where(np.isfinite(d), d, 0.0).astype("<f2"))
        T_arkit = np.full((4, 4), np.nan) if i in invalid else T_raw @ ARKIT_FROM_OPENCV_44
        lines.append(_camera_line(stamps[i], Ks[i][0], T_arkit))
    colors_N, depth_N = np.stack(colors), np.stack(depths)
    write_mp4(scan_dir / f"{scan}.mp4", colors_N)
    (scan_dir / f"{scan}.depth.zlib").write_bytes(raw_deflate(depth_N.tobytes()))
    (scan_dir / f"{scan}.confidence.zlib").write_bytes(
        raw_deflate(np.full(depth_N.shape, 2, np.uint8).tobytes())
    )
    (scan_dir / f"{scan}.jsonl").write_text("\n".join(lines) + "\n")
    (scan_dir / f"{scan}.json").write_text(json.dumps(_metadata(n_frames)))
    align = {"version": "multiscan@0.0.1",
             "coordinate_transform": M.reshape(-1, order="F").tolist(),
             "reference_scan_alignment": {"target_id": scan,
                                          "transformation": np.eye(4).reshape(-1).tolist()}}  # fmt: skip
    (scan_dir / f"{scan}.align.json").write_text(json.dumps(align))
    write_multiscan_ply(scan_dir / f"{scan}.ply", mesh)
    return MultiScanTruth(scan_dir, M, poses, [k[0] for k in Ks], [k[1] for k in Ks], stamps,
                          tuple(invalid), mesh, colors_N, depth_N)  # fmt: skip
