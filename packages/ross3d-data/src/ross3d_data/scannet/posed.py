"""Exported posed-image folders, the layout ScanNet's ``SensReader`` exporter writes.

``color/<i>.jpg`` (RGB JPEG), ``depth/<i>.png`` (uint16 mm, 0 = invalid), ``pose/<i>.txt``
(4x4 camera-to-world), ``intrinsic/intrinsic_{color,depth}.txt`` (4x4, K top-left). ``<i>`` is
the frame's index in the source stream.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Frame, Intrinsics, pose_is_valid

SUBDIRS = ("color", "depth", "pose", "intrinsic")


def is_posed_dir(path: Path) -> bool:
    """True when ``path`` holds ``pose/`` and ``color/`` folders."""
    return (path / "pose").is_dir() and (path / "color").is_dir()


def read_matrix_44(path: Path) -> np.ndarray:
    """A 4x4 whitespace-separated text matrix (pose or intrinsic file)."""
    try:
        M = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as e:
        raise SceneError(path, f"cannot read 4x4 matrix: {e}") from None
    if M.shape != (4, 4):
        raise SceneError(path, f"expected a 4x4 matrix, got shape {M.shape}")
    return M


def pose_ids(posed_dir: Path) -> list[int]:
    """Sorted frame ids that have a pose file (valid or not)."""
    ids = []
    for p in (posed_dir / "pose").glob("*.txt"):
        if not p.stem.isdigit():
            raise SceneError(p, "pose file name is not a frame index")
        ids.append(int(p.stem))
    return sorted(ids)


def valid_frame_ids(posed_dir: Path) -> tuple[list[int], list[int]]:
    """(frame ids with finite poses, ids whose pose has -inf/nan), both sorted."""
    valid, invalid = [], []
    for i in pose_ids(posed_dir):
        (
            valid if pose_is_valid(read_matrix_44(posed_dir / "pose" / f"{i}.txt")) else invalid
        ).append(i)
    return valid, invalid


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise SceneError(path, f"cannot read image header: {e}") from None


def read_intrinsics(posed_dir: Path, kind: str, frame_id: int) -> Intrinsics:
    """``intrinsic_<kind>.txt`` with the image size taken from frame ``frame_id``'s file."""
    K = read_matrix_44(posed_dir / "intrinsic" / f"intrinsic_{kind}.txt")
    img = posed_dir / kind / f"{frame_id}.{'jpg' if kind == 'color' else 'png'}"
    w, h = _image_size(img)
    try:
        return Intrinsics.from_matrix(K, w, h)
    except ValueError as e:
        raise SceneError(posed_dir / "intrinsic" / f"intrinsic_{kind}.txt", str(e)) from None


def read_color(path: Path) -> np.ndarray:
    """uint8 RGB HxWx3."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SceneError(path, "missing or undecodable colour image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_depth(path: Path) -> np.ndarray:
    """uint16 millimetres HxW."""
    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise SceneError(path, "missing or undecodable depth image")
    if d.dtype != np.uint16 or d.ndim != 2:
        raise SceneError(path, f"depth must be single-channel uint16 mm, got {d.dtype} {d.shape}")
    return d


def read_frame(posed_dir: Path, frame_id: int) -> Frame:
    """Colour, depth and raw pose of one frame."""
    return Frame(
        frame_id=frame_id,
        color_HW3=read_color(posed_dir / "color" / f"{frame_id}.jpg"),
        depth_mm_HW=read_depth(posed_dir / "depth" / f"{frame_id}.png"),
        T_world_cam=read_matrix_44(posed_dir / "pose" / f"{frame_id}.txt"),
    )


def write_intrinsics(posed_dir: Path, color: Intrinsics, depth: Intrinsics) -> None:
    """``intrinsic/intrinsic_{color,depth}.txt`` plus identity extrinsics, as ScanNet exports."""
    d = posed_dir / "intrinsic"
    d.mkdir(parents=True, exist_ok=True)
    for kind, K in (("color", color), ("depth", depth)):
        np.savetxt(d / f"intrinsic_{kind}.txt", K.matrix_44(), fmt="%f")
        np.savetxt(d / f"extrinsic_{kind}.txt", np.eye(4), fmt="%f")


def write_frame(posed_dir: Path, frame: Frame, jpeg_quality: int = 95) -> None:
    """Write one frame's colour JPEG, depth PNG and pose text."""
    for sub in SUBDIRS[:3]:
        (posed_dir / sub).mkdir(parents=True, exist_ok=True)
    i = frame.frame_id
    bgr = cv2.cvtColor(frame.color_HW3, cv2.COLOR_RGB2BGR)
    cv2.imwrite(
        str(posed_dir / "color" / f"{i}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    )
    cv2.imwrite(str(posed_dir / "depth" / f"{i}.png"), frame.depth_mm_HW.astype(np.uint16))
    np.savetxt(posed_dir / "pose" / f"{i}.txt", frame.T_world_cam, fmt="%f")
