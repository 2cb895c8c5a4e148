"""A synthetic ARKitScenes 3DOD video in the published layout, with everything a reader must
recover known exactly.

The room is the demo room (``ross3d_data.synthetic.scenes``: floor at z = 0, walls along the axes)
placed in the world by a yaw of ``YAW_DEG`` and a translation, as ARKit's gravity-aligned but
not room-aligned world is. Frames are ray-cast from the mesh with integer pixel centres (the
official ``generate_point`` convention) in the SENSOR orientation: frame ``i`` is stored turned
by ``i % 4`` quarter turns (0 upright, 1 needs 90 deg clockwise, 2 needs 180, 3 needs 90 deg
anticlockwise), its sensor axes written out below independently of the reader's rotation code.
``lowres_wide.traj`` holds WORLD-TO-CAMERA angle-axis lines (scipy Rotation) with 8 decimals.

Quirks on purpose: frame ``NO_POSE`` has no traj line; frame ``NEAR_POSE``'s traj timestamp is
2 ms off its file name (the loader's 0.005 s match); frame ``PINCAM_BEFORE``'s ``.pincam`` is
named 1 ms earlier (the loader's -0.001 fallback).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from ross3d_data.core.records import Intrinsics, Mesh
from ross3d_data.synthetic.raycast import MeshRaycaster
from ross3d_data.synthetic.scenes import DemoObject, build_room, demo_layout, demo_trajectory
from scipy.spatial.transform import Rotation

VID = "41069021"
EMPTY_VID = "47334522"  # one of the 24 ids shipped without mesh, annotation and traj
SENSOR_K = Intrinsics(212.0, 213.5, 127.3, 95.8, 256, 192)  # lowres_wide: 256 x 192 landscape
YAW_DEG = 30.0
T_WORLD_ROOM_T = (0.7, -0.4, -1.2)  # room origin in ARKit's world (floor 1.2 m below start)
N_FRAMES = 12
NO_POSE, NEAR_POSE, PINCAM_BEFORE = 5, 3, 7
T0_S = 6123.0123457


@dataclass
class ArkitVideo:
    """What was written, as the generator knows it (timestamps as in the file names)."""

    path: Path
    T_world_room: np.ndarray  # the demo room's frame -> ARKit world
    mesh_world: Mesh
    objects: list[DemoObject]  # boxes in the room frame
    timestamps: list[str]  # every depth frame, time order
    T_world_cam: dict[str, np.ndarray] = field(default_factory=dict)  # upright, posed frames
    T_world_sensor: dict[str, np.ndarray] = field(default_factory=dict)  # as stored
    turns: dict[str, int] = field(default_factory=dict)


def yaw_pose(yaw_deg: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def sensor_pose(T_world_upright: np.ndarray, turns: int) -> np.ndarray:
    """The stored (sensor) camera of an upright view: same centre and optical axis, x/y axes
    turned. ``turns`` 1: the sensor's x axis points down (image needs 90 deg clockwise)."""
    x, y, z = T_world_upright[:3, 0], T_world_upright[:3, 1], T_world_upright[:3, 2]
    xs, ys = {0: (x, y), 1: (y, -x), 2: (-x, -y), 3: (-y, x)}[turns]
    T = T_world_upright.copy()
    T[:3, :3] = np.stack([xs, ys, z], 1)
    return T


def render(caster: MeshRaycaster, K: Intrinsics, T_world_cam: np.ndarray):
    """(RGB, depth mm) with pixel centres at integer coordinates: the ray caster puts them at
    +0.5, so it gets the principal point shifted by half a pixel."""
    shifted = Intrinsics(K.fx, K.fy, K.cx + 0.5, K.cy + 0.5, K.width, K.height)
    return caster.render(shifted, T_world_cam)


def write_binary_ply(path: Path, mesh: Mesh) -> None:
    """Binary little-endian PLY: float x y z, uchar red green blue, uchar/int triangle lists."""
    n, f = len(mesh.vertices_N3), len(mesh.faces_F3)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment synthetic ARKitScenes-style 3dod mesh\n"
        f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {f}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vert = np.zeros(n, [("p", "<f4", 3), ("c", "u1", 3)])
    vert["p"], vert["c"] = mesh.vertices_N3, mesh.colors_N3
    face = np.zeros(f, [("n", "u1"), ("i", "<i4", 3)])
    face["n"], face["i"] = 3, mesh.faces_F3
    path.write_bytes(header.encode() + vert.tobytes() + face.tobytes())


def traj_line(ts: float, T_world_cam: np.ndarray) -> str:
    """``ts ax ay az tx ty tz`` of the WORLD-TO-CAMERA transform (inverse of the pose)."""
    E = np.linalg.inv(T_world_cam)
    rotvec = Rotation.from_matrix(E[:3, :3]).as_rotvec()
    return " ".join([f"{ts:.8f}", *(repr(float(v)) for v in (*rotvec, *E[:3, 3]))])


def annotation(objects: list[DemoObject], T_world_room: np.ndarray) -> dict:
    """``<vid>_3dod_annotation.json``: obbAligned boxes; odd objects list their axes permuted
    and one flipped (row i of normalizedAxes = world direction of the axis of length i)."""
    data = []
    for obj in objects:
        axes = T_world_room[:3, :3].T.copy()  # rows: world directions of room x, y, z
        lengths = np.asarray(obj.size_3, np.float64)
        if obj.object_id % 2:
            axes, lengths = np.stack([-axes[1], axes[0], axes[2]]), lengths[[1, 0, 2]]
        centre = T_world_room[:3, :3] @ obj.center_3 + T_world_room[:3, 3]
        obb = {"centroid": centre.tolist(), "axesLengths": lengths.tolist(),
               "normalizedAxes": axes.reshape(-1).tolist()}  # fmt: skip
        data.append({"uid": f"uid-{obj.object_id}", "label": obj.label, "modelId": "",
                     "children": [], "objectId": obj.object_id, "segments": {"obbAligned": obb},
                     "hierarchy": 0, "isInGroup": False, "labelType": "object",
                     "attributes": {}})  # fmt: skip
    return {"data": data, "stats": {}, "comment": "", "confirm": [], "skipped": False}


def _write_frame(frames: Path, ts: str, color, depth, K: Intrinsics, pincam_ts: str) -> None:
    cv2.imwrite(str(frames / "lowres_wide" / f"{VID}_{ts}.png"), color[..., ::-1])
    cv2.imwrite(str(frames / "lowres_depth" / f"{VID}_{ts}.png"), depth)
    line = f"{K.width} {K.height} {K.fx} {K.fy} {K.cx} {K.cy}\n"
    (frames / "lowres_wide_intrinsics" / f"{VID}_{pincam_ts}.pincam").write_text(line)


def _frame_dirs(video: Path, vid: str) -> Path:
    frames = video / f"{vid}_frames"
    for sub in ("lowres_wide", "lowres_depth", "lowres_wide_intrinsics"):
        (frames / sub).mkdir(parents=True)
    return frames


def write_arkit_video(split_dir: Path, n_frames: int = N_FRAMES) -> ArkitVideo:
    """Write ``<split_dir>/<VID>/`` (mesh, annotation, frames, traj); returns the truth."""
    video = Path(split_dir) / VID
    frames = _frame_dirs(video, VID)
    T_world_room = yaw_pose(YAW_DEG, T_WORLD_ROOM_T)
    objects = demo_layout(0)
    mesh_room, _, _ = build_room(objects, np.random.default_rng(3))
    mesh = mesh_room.transformed(T_world_room)
    write_binary_ply(video / f"{VID}_3dod_mesh.ply", mesh)
    (video / f"{VID}_3dod_annotation.json").write_text(
        json.dumps(annotation(objects, T_world_room))
    )
    caster = MeshRaycaster(mesh)
    times = [T0_S + 0.1 * i for i in range(n_frames)]
    truth = ArkitVideo(video, T_world_room, mesh, objects, [f"{t:.3f}" for t in times])
    lines = []
    for i, (t, T_room_cam) in enumerate(zip(times, demo_trajectory(n_frames, 0), strict=True)):
        ts, T_up = truth.timestamps[i], T_world_room @ T_room_cam
        T_sensor = sensor_pose(T_up, i % 4)
        color, depth = render(caster, SENSOR_K, T_sensor)
        _write_frame(frames, ts, color, depth, SENSOR_K,
                     f"{t - 0.001:.3f}" if i == PINCAM_BEFORE else ts)  # fmt: skip
        if i == NO_POSE:
            continue
        lines.append(traj_line(t + 0.002 if i == NEAR_POSE else t, T_sensor))
        truth.T_world_cam[ts], truth.T_world_sensor[ts], truth.turns[ts] = T_up, T_sensor, i % 4
    (frames / "lowres_wide.traj").write_text("\n".join(lines) + "\n")
    return truth


def write_video_without_assets(split_dir: Path, n_frames: int = 2) -> Path:
    """``<split_dir>/<EMPTY_VID>/``: frames only, no mesh, no annotation, no traj."""
    video = Path(split_dir) / EMPTY_VID
    frames = _frame_dirs(video, EMPTY_VID)
    for i in range(n_frames):
        ts = f"{100.0 + 0.1 * i:.3f}"
        cv2.imwrite(str(frames / "lowres_wide" / f"{EMPTY_VID}_{ts}.png"),
                    np.zeros((192, 256, 3), np.uint8))  # fmt: skip
        cv2.imwrite(str(frames / "lowres_depth" / f"{EMPTY_VID}_{ts}.png"),
                    np.full((192, 256), 1000, np.uint16))  # fmt: skip
    return video
