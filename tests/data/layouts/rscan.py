"""3RScan scans in the published layout (WaldJohannaU/3RScan), ray-cast from a demo room.

``write_rscan_scan`` writes ``<root>/<scan_id>/``: ``mesh.refined.v2.obj`` + ``mesh.refined.mtl``
+ texture ``mesh.refined_0.png`` (one texel per vertex), and ``sequence/`` (or ``sequence.zip``
with the members at the zip root, as the official prepare script unzips it) holding
``_info.txt`` and per frame ``frame-%06d.color.jpg`` (960x540), ``.depth.pgm`` (224x172, binary
P5, 16-bit big-endian samples in mm) and ``.pose.txt`` (row-major camera-to-world, metres).

The camera is a landscape sensor: the images are what an upright camera turned 90 degrees
counter-clockwise sees, so turning them clockwise gives the upright view (``RScanTruth`` keeps
both poses). Intrinsics are in the project's convention (pixel centres at integer coordinates);
the ray caster shoots through ``u + 0.5``, so it gets ``cx + 0.5, cy + 0.5``.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ross3d_data.core.records import Intrinsics, Mesh
from ross3d_data.synthetic.raycast import MeshRaycaster
from ross3d_data.synthetic.scenes import build_room, demo_layout, demo_trajectory

# the calibration printed in rio_lib's sequence.cc (3RScan commit 880d406)
COLOR_K = Intrinsics(756.832, 756.026, 492.889, 270.419, 960, 540)
DEPTH_K = Intrinsics(176.594, 240.808, 114.613, 85.7915, 224, 172)
TEXTURE_WIDTH = 64
# p_upright = Q @ p_stored: the stored image's x (right) is the upright image's y (down), its y
# (down) the upright image's -x (left), i.e. the upright view turned 90 degrees counter-clockwise
Q_UPRIGHT_STORED_33 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class RScanTruth:
    """What the generator knows: poses in the scan's world, the mesh, the invalid frames."""

    scan_dir: Path
    T_world_room: np.ndarray  # 4x4, the demo room (z up, floor z = 0) into the scan's world
    T_world_cam_upright: np.ndarray  # (n, 4, 4), OpenCV axes of the upright image
    T_world_cam_stored: np.ndarray  # (n, 4, 4), what pose.txt holds (landscape image axes)
    invalid: tuple[int, ...]
    mesh_world: Mesh


def yaw_transform(degrees: float, translation_3) -> np.ndarray:
    """4x4 rotation about +z followed by a translation."""
    a = np.deg2rad(degrees)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    T[:3, 3] = translation_3
    return T


def caster_intrinsics(K: Intrinsics) -> Intrinsics:
    """``K`` for ``MeshRaycaster``, whose pixel ``u`` ray passes through ``u + 0.5``."""
    return Intrinsics(K.fx, K.fy, K.cx + 0.5, K.cy + 0.5, K.width, K.height)


def info_text(n_frames: int, color: Intrinsics = COLOR_K, depth: Intrinsics = DEPTH_K) -> str:
    """``_info.txt`` as the 3RScan sequences hold it (row-major 4x4 intrinsics)."""

    def k16(K: Intrinsics) -> str:
        return " ".join(f"{v:g}" for v in K.matrix_44().reshape(-1))

    identity = " ".join(f"{v:g}" for v in np.eye(4).reshape(-1))
    lines = [
        "m_versionNumber = 4",
        "m_sensorName = tangoDevice (calibrated)",
        f"m_colorWidth = {color.width}",
        f"m_colorHeight = {color.height}",
        f"m_depthWidth = {depth.width}",
        f"m_depthHeight = {depth.height}",
        "m_depthShift = 1000",
        f"m_calibrationColorIntrinsic = {k16(color)}",
        f"m_calibrationColorExtrinsic = {identity}",
        f"m_calibrationDepthIntrinsic = {k16(depth)}",
        f"m_calibrationDepthExtrinsic = {identity}",
        f"m_frames.size = {n_frames}",
    ]
    return "\n".join(lines) + "\n"


def pgm_p5(depth_mm_HW: np.ndarray) -> bytes:
    """Binary 16-bit PGM: header, then big-endian samples (the Netpbm standard)."""
    h, w = depth_mm_HW.shape
    return f"P5\n{w} {h}\n65535\n".encode() + depth_mm_HW.astype(">u2").tobytes()


def pose_text(T: np.ndarray) -> str:
    return "".join(" ".join(f"{v:.9f}" for v in row) + "\n" for row in T)


def write_textured_obj(scan_dir: Path, mesh: Mesh) -> None:
    """``mesh.refined.v2.obj`` with ``mesh.refined.mtl`` and one texel per vertex in
    ``mesh.refined_0.png`` (OBJ ``vt`` origin at the image's bottom-left)."""
    n = len(mesh.vertices_N3)
    rows = -(-n // TEXTURE_WIDTH)
    texture = np.zeros((rows * TEXTURE_WIDTH, 3), np.uint8)
    texture[:n] = mesh.colors_N3
    cv2.imwrite(str(scan_dir / "mesh.refined_0.png"),
                cv2.cvtColor(texture.reshape(rows, TEXTURE_WIDTH, 3), cv2.COLOR_RGB2BGR))  # fmt: skip
    (scan_dir / "mesh.refined.mtl").write_text(
        "newmtl mesh.refined\nKa 1 1 1\nKd 1 1 1\nmap_Kd mesh.refined_0.png\n"
    )
    col, row = np.arange(n) % TEXTURE_WIDTH, np.arange(n) // TEXTURE_WIDTH
    u, v = (col + 0.5) / TEXTURE_WIDTH, 1.0 - (row + 0.5) / rows
    lines = ["mtllib mesh.refined.mtl", "usemtl mesh.refined"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices_N3]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in zip(u, v, strict=True)]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in mesh.faces_F3 + 1]
    (scan_dir / "mesh.refined.v2.obj").write_text("\n".join(lines) + "\n")


def _sequence_members(truth_poses: np.ndarray, invalid, mesh_world: Mesh) -> dict[str, bytes]:
    caster = MeshRaycaster(mesh_world)
    members = {"_info.txt": info_text(len(truth_poses)).encode()}
    for i, T in enumerate(truth_poses):
        color, _ = caster.render(caster_intrinsics(COLOR_K), T)
        _, depth = caster.render(caster_intrinsics(DEPTH_K), T)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(color, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])  # fmt: skip
        assert ok
        members[f"frame-{i:06d}.color.jpg"] = jpg.tobytes()
        members[f"frame-{i:06d}.depth.pgm"] = pgm_p5(depth)
        pose = np.full((4, 4), np.nan) if i in invalid else T  # lost tracking
        members[f"frame-{i:06d}.pose.txt"] = pose_text(pose).encode()
    return members


def write_rscan_scan(
    root: Path,
    scan_id: str,
    n_frames: int = 6,
    invalid: tuple[int, ...] = (2,),
    zipped: bool = False,
    T_world_room: np.ndarray | None = None,
    index: int = 0,
) -> RScanTruth:
    """Write one scan ``root/scan_id`` (module docstring); returns the ground truth."""
    scan_dir = Path(root) / scan_id
    if scan_dir.exists():
        shutil.rmtree(scan_dir)
    scan_dir.mkdir(parents=True)
    T_world_room = yaw_transform(30.0, (0.4, -0.2, 0.1)) if T_world_room is None else T_world_room
    mesh_room, _, _ = build_room(demo_layout(index), np.random.default_rng([index, 7]))
    mesh_world = mesh_room.transformed(T_world_room)
    write_textured_obj(scan_dir, mesh_world)
    upright = T_world_room @ demo_trajectory(n_frames, index)
    T_upright_stored = np.eye(4)
    T_upright_stored[:3, :3] = Q_UPRIGHT_STORED_33
    stored = upright @ T_upright_stored
    members = _sequence_members(stored, set(invalid), mesh_world)
    if zipped:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        (scan_dir / "sequence.zip").write_bytes(buf.getvalue())
    else:
        (scan_dir / "sequence").mkdir()
        for name, data in members.items():
            (scan_dir / "sequence" / name).write_bytes(data)
    return RScanTruth(scan_dir, T_world_room, upright, stored, tuple(invalid), mesh_world)


def write_rescans_json(root: Path, reference: RScanTruth, rescans: list[RScanTruth]) -> Path:
    """``root/3RScan.json``: the rescans' column-major ``transform`` rescan -> reference."""
    scans = []
    for r in rescans:
        T_ref_rescan = reference.T_world_room @ np.linalg.inv(r.T_world_room)
        scans.append({"reference": r.scan_dir.name, "transform":
                      T_ref_rescan.reshape(-1, order="F").tolist(),
                      "rigid": [], "nonrigid": [], "removed": []})  # fmt: skip
    data = [{"reference": reference.scan_dir.name, "type": "train", "ambiguity": [],
             "scans": scans}]  # fmt: skip
    path = Path(root) / "3RScan.json"
    path.write_text(json.dumps(data, indent=1))
    return path
