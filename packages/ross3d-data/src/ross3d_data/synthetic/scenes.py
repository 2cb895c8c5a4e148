"""Synthetic ScanNet-format rooms for demos and tests (no ScanNet data can ship).

Each scene folder ``demo000k_00`` holds, in the REAL formats: ``<id>_vh_clean_2.ply`` (raw,
unaligned frame), ``<id>.txt`` with a non-identity ``axisAlignment`` (rotation about z plus a
translation), ``<id>.aggregation.json`` + segs file, a ``.sens`` stream rendered from the mesh
(with a few -inf poses), and the exported posed-image folders (so ``load_scene`` reads it
directly). The room is laid out in the aligned frame (floor z = 0, ceiling at 2.6 m) from
:func:`demo_layout`, whose boxes are exactly the GT boxes a reader must recover.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ross3d_data.core.records import Frame, Intrinsics, Mesh
from ross3d_data.scannet import files as scannet
from ross3d_data.scannet.export import export_scene_frames
from ross3d_data.scannet.ply import write_ply
from ross3d_data.scannet.sens import SensHeader, write_sens
from ross3d_data.synthetic.raycast import MeshRaycaster

ROOM_X, ROOM_Y, CEILING_Z = 6.0, 5.0, 2.6  # metres, aligned frame, centred on the origin
COLOR_K = Intrinsics(260.0, 260.0, 160.0, 120.0, 320, 240)
# Depth at half resolution, ScanNet-like; its pixel centres are exactly the colour pixels
# (1::2, 1::2), so one ray cast at colour resolution renders both images.
DEPTH_K = Intrinsics(130.0, 130.0, 79.75, 59.75, 160, 120)
# ScanNet's real frame sizes (typical intrinsics): make_demo(full_size=True), for benchmarks
SCANNET_COLOR_K = Intrinsics(1170.19, 1170.19, 647.75, 483.75, 1296, 968)
SCANNET_DEPTH_K = Intrinsics(577.59, 577.59, 318.91, 238.97, 640, 480)
# raw frames with a -inf pose: 20 falls on every 2nd/10th frame (export must skip it), 41 does not
INVALID_FRAMES = (20, 41)


@dataclass(frozen=True)
class DemoObject:
    """A furniture box in the aligned frame: what ``Scene.objects`` must return."""

    object_id: int
    label: str
    center_3: tuple[float, float, float]
    size_3: tuple[float, float, float]
    color_3: tuple[int, int, int]

    @property
    def box_6(self) -> np.ndarray:
        return np.array([*self.center_3, *self.size_3], np.float64)


# label, (x, y) centre, (dx, dy, dz) size, colour; every box stands on the floor
_FURNITURE = [
    ("wardrobe", (-2.55, 1.4), (0.6, 1.2, 1.8), (150, 90, 50)),
    ("table", (0.3, 0.0), (1.4, 0.8, 0.75), (200, 170, 110)),
    ("chair", (0.3, -0.75), (0.45, 0.45, 0.9), (40, 90, 170)),
    ("chair", (0.3, 0.75), (0.45, 0.45, 0.9), (40, 150, 80)),
    ("sofa", (2.45, -0.6), (0.9, 2.0, 0.8), (170, 40, 50)),
    ("cabinet", (-1.0, -2.2), (0.8, 0.5, 0.6), (230, 220, 60)),
    ("trash can", (1.8, 2.2), (0.3, 0.3, 0.4), (90, 90, 90)),
]


def demo_layout(index: int, seed: int = 0) -> list[DemoObject]:
    """Furniture of demo scene ``index``: fixed plan, positions jittered by up to 0.1 m."""
    rng = np.random.default_rng([seed, index])
    objects = []
    for oid, (label, (x, y), size, color) in enumerate(_FURNITURE):
        jx, jy = np.round(rng.uniform(-0.1, 0.1, 2), 3)
        center = (round(x + jx, 3), round(y + jy, 3), size[2] / 2)
        objects.append(DemoObject(oid, label, center, size, color))
    return objects


def demo_alignment(index: int) -> np.ndarray:
    """``T_aligned_world`` of demo scene ``index``: rotation about z plus a translation."""
    a = np.deg2rad(25.0 + 40.0 * index)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    T[:3, 3] = [1.5 - 0.5 * index, -0.8, 0.05]
    return T


class _MeshBuilder:
    """Accumulates quads (as grids of triangles), one segment id per quad."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.verts: list[np.ndarray] = []
        self.colors: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.segs: list[np.ndarray] = []
        self.n = 0

    def quad(self, origin, u, v, cells: tuple[int, int], color, pattern: bool = False) -> int:
        """Grid quad ``origin + s*u + t*v`` (s, t in [0, 1]); returns its segment id."""
        nu, nv = cells
        s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
        pts = np.asarray(origin) + s[..., None] * np.asarray(u) + t[..., None] * np.asarray(v)
        rgb = np.broadcast_to(np.asarray(color, np.float64), pts.shape).copy()
        if pattern:  # checker tint so views of floor and walls are not featureless
            rgb *= np.where((np.arange(nu + 1)[:, None] + np.arange(nv + 1)) % 2, 0.8, 1.0)[
                ..., None
            ]
        rgb += self.rng.normal(0, 6, rgb.shape)
        idx = self.n + np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
        a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
        self.faces.append(
            np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
        )
        self.verts.append(pts.reshape(-1, 3))
        self.colors.append(np.clip(rgb, 0, 255).reshape(-1, 3))
        seg = len(self.segs)
        self.segs.append(np.full(pts.shape[0] * pts.shape[1], seg))
        self.n += pts.shape[0] * pts.shape[1]
        return seg

    def box(self, obj: DemoObject) -> list[int]:
        """Six faces of an axis-aligned box (top brighter, sides shaded); their segment ids."""
        lo = np.asarray(obj.center_3) - np.asarray(obj.size_3) / 2
        dx, dy, dz = np.diag(obj.size_3)
        col = np.asarray(obj.color_3, np.float64)
        faces = [(lo, dy, dx, 1.0), (lo + dz, dx, dy, 1.15), (lo, dx, dz, 0.85),
                 (lo + dy, dz, dx, 0.9), (lo, dz, dy, 0.75), (lo + dx, dy, dz, 0.95)]  # fmt: skip
        return [self.quad(o, u, v, (3, 3), np.minimum(col * k, 255)) for o, u, v, k in faces]

    def mesh(self) -> tuple[Mesh, np.ndarray]:
        v = np.concatenate(self.verts).astype(np.float32)
        c = np.round(np.concatenate(self.colors)).astype(np.uint8)
        return Mesh(v, c, np.concatenate(self.faces).astype(np.int64)), np.concatenate(self.segs)


def build_room(
    objects: list[DemoObject], rng: np.random.Generator
) -> tuple[Mesh, np.ndarray, dict[int, list[int]]]:
    """(aligned mesh, segment id per vertex, object_id -> its segment ids)."""
    mb = _MeshBuilder(rng)
    x0, y0, X, Y, Z = (
        -ROOM_X / 2,
        -ROOM_Y / 2,
        np.array([ROOM_X, 0, 0]),
        np.array([0, ROOM_Y, 0]),
        np.array([0, 0, CEILING_Z]),
    )
    mb.quad((x0, y0, 0), X, Y, (24, 20), (185, 175, 160), pattern=True)  # floor
    mb.quad((x0, y0, CEILING_Z), Y, X, (6, 5), (240, 240, 235))  # ceiling, must be cut by BEV
    walls = [((x0, y0, 0), X, Z), ((x0, -y0, 0), Z, X), ((x0, y0, 0), Z, Y), ((-x0, y0, 0), Y, Z)]
    for k, (o, u, v) in enumerate(walls):
        shade = (215 - 12 * k, 205 - 6 * k, 190)
        mb.quad(o, u, v, (12, 5) if np.linalg.norm(u) > 3 else (5, 12), shade, pattern=True)
    segs = {obj.object_id: mb.box(obj) for obj in objects}
    mesh, seg_idx = mb.mesh()
    return mesh, seg_idx, segs


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (x right, y down, z forward) at ``eye`` looking at ``target``."""
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    T[:3, 3] = eye
    return T


def demo_trajectory(n_frames: int, index: int) -> np.ndarray:
    """(n, 4, 4) aligned camera-to-world poses: an ellipse at 1.4 m looking inwards."""
    phase = np.linspace(0, 2 * np.pi, n_frames, endpoint=False) + 0.7 * index
    poses = []
    for k, p in enumerate(phase):
        eye = np.array([1.9 * np.cos(p), 1.5 * np.sin(p), 1.4 + 0.1 * np.sin(3 * p)])
        target = np.array([0.6 * np.cos(p + 2.2), 0.5 * np.sin(p + 2.2), 0.5 + 0.2 * (k % 2)])
        poses.append(_look_at(eye, target))
    return np.stack(poses)


def _render_frames(
    mesh_raw: Mesh, poses_raw: np.ndarray, invalid: set[int], full_size: bool
) -> Iterator[Frame]:
    caster = MeshRaycaster(mesh_raw)
    for i, T in enumerate(poses_raw):
        if full_size:  # ScanNet's depth grid is not a subsample of its colour grid: cast twice
            color, _ = caster.render(SCANNET_COLOR_K, T)
            depth = caster.render(SCANNET_DEPTH_K, T)[1]
        else:
            color, depth_full = caster.render(COLOR_K, T)
            depth = depth_full[1::2, 1::2]
        pose = np.full((4, 4), -np.inf) if i in invalid else T  # lost tracking, as ScanNet marks it
        yield Frame(i, color, depth, pose)


def write_demo_scene(
    scene_dir: Path,
    index: int,
    seed: int = 0,
    n_frames: int = 80,
    every: int = 2,
    full_size: bool = False,
) -> Path:
    """Write one demo scene (raw scan files, ``.sens`` and the posed export) into ``scene_dir``.

    An existing ``scene_dir`` is replaced, so no stale frames of an earlier demo survive.
    ``full_size``: frames of ScanNet's size (1296x968 colour, 640x480 depth) instead of the
    small demo size (320x240, 160x120).
    """
    color_K, depth_K = (SCANNET_COLOR_K, SCANNET_DEPTH_K) if full_size else (COLOR_K, DEPTH_K)
    if scene_dir.exists():
        shutil.rmtree(scene_dir)
    scene_dir.mkdir(parents=True)
    objects = demo_layout(index, seed)
    mesh_aligned, seg_idx, segs = build_room(objects, np.random.default_rng([seed, index, 1]))
    T_aligned_world = demo_alignment(index)
    T_world_aligned = np.linalg.inv(T_aligned_world)
    mesh_raw = mesh_aligned.transformed(T_world_aligned)
    write_ply(scannet.mesh_path(scene_dir), mesh_raw)
    scannet.write_meta(scannet.meta_path(scene_dir), T_aligned_world, color_K, depth_K)
    scannet.write_annotations(
        scene_dir, seg_idx, [(o.object_id, o.label, segs[o.object_id]) for o in objects]
    )
    poses_raw = T_world_aligned @ demo_trajectory(n_frames, index)
    invalid = {f for f in INVALID_FRAMES if f < n_frames}
    header = SensHeader(color_K, depth_K, n_frames, sensor_name="ross3d-demo")
    frames = _render_frames(mesh_raw, poses_raw, invalid, full_size)
    write_sens(scannet.sens_path(scene_dir), header, frames)
    export_scene_frames(scannet.sens_path(scene_dir), scene_dir, every)
    return scene_dir


def make_demo(
    out_dir: Path,
    n_scenes: int = 2,
    seed: int = 0,
    n_frames: int = 80,
    annotations: bool = True,
    full_size: bool = False,
) -> list[Path]:
    """Write ``n_scenes`` demo scenes ``OUT/demo000k_00`` and return their folders.

    ``n_frames`` raw frames per ``.sens`` (frames 20 and 41 get -inf poses when they exist);
    the posed export keeps every 2nd frame. With ``annotations`` the five benchmarks' files for
    these scenes are written in the official formats under ``OUT/annotations/`` (see
    ``ross3d_data.synthetic.annotations``; ``find_scenes`` does not mistake that folder for a scene).
    ``full_size``: ScanNet-size frames (see :func:`write_demo_scene`).
    """
    from ross3d_data.synthetic.annotations import write_demo_annotations

    if n_scenes < 1 or n_frames < 1:
        raise ValueError(f"need n_scenes >= 1 and n_frames >= 1, got {n_scenes}, {n_frames}")
    out_dir = Path(out_dir)
    scenes = [
        write_demo_scene(out_dir / f"demo{k:04d}_00", k, seed, n_frames, full_size=full_size)
        for k in range(n_scenes)
    ]
    if annotations:
        write_demo_annotations(scenes, out_dir / "annotations")
    return scenes
