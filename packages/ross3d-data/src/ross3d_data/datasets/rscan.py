"""3RScan scans (WaldJohannaU/3RScan) as a ``Scene``, frames turned upright.

Published layout of one scan folder ``<scan_id>/`` (the 3RScan README; rio_lib ``FrameConfig``):

* ``mesh.refined.v2.obj`` (+ ``mesh.refined.mtl``, texture ``mesh.refined_0.png``): +Z up, metres,
  in the scan's own world frame; read with ``datasets.meshes.read_mesh``.
* ``sequence/`` or ``sequence.zip`` (members at the zip root, or under ``sequence/``; read one
  member at a time, never extracted): ``_info.txt`` (``key = value`` lines: ``m_colorWidth``,
  ``m_colorHeight``, ``m_depthWidth``, ``m_depthHeight``, ``m_depthShift``, row-major 4x4
  ``m_calibrationColorIntrinsic`` / ``m_calibrationDepthIntrinsic``, ``m_frames.size``) and per
  frame ``frame-%06d.color.jpg`` (960x540), ``frame-%06d.depth.pgm`` (224x172 uint16; binary P5
  with 16-bit samples is big-endian by the Netpbm standard, which ``cv2.imdecode`` follows: our
  test checks a value whose two bytes differ) and ``frame-%06d.pose.txt`` (row-major camera-to-
  world, metres, OpenCV camera axes). Frames whose pose is missing or non-finite are skipped and
  counted.

The images are stored in the sensor's landscape orientation; the official renderer and the
authors' 3DSSG loader turn them 90 degrees clockwise to get upright views. This reader does the
same to colour, depth, intrinsics and pose together with ``core.rotation``, so the geometry
stays exact (pixel centres at integer coordinates, as in ``core.geometry``).

Rescans: ``3RScan.json`` (dataset root) stores per rescan a column-major 4x4 ``transform``
rescan -> reference scan. ``RScanConfig(align_to_reference=True)`` uses it as
``T_aligned_world``; the official code applies it to metre meshes unchanged (``translation_unit
= "m"``) while the FAQ calls the translation millimetres (``"mm"``), so the unit is an option
and a translation over 100 "metres" is refused as a likely unit mix-up.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.ids import folder_scene_id
from ross3d_data.core.records import Frame, Intrinsics, pose_is_valid
from ross3d_data.core.rotation import (
    rotate_image_upright,
    rotate_intrinsics_upright,
    rotate_pose_upright,
)
from ross3d_data.core.scene import Scene
from ross3d_data.datasets.meshes import read_mesh

MESH_FILE = "mesh.refined.v2.obj"
SEQUENCE_DIR = "sequence"
SEQUENCE_ZIP = "sequence.zip"
INFO_FILE = "_info.txt"
RESCANS_JSON = "3RScan.json"
DATASET = "3rscan"
MAX_TRANSLATION_M = 100.0  # no room is this large: a bigger translation is a unit mix-up
CLOCKWISE = 1  # core.rotation turns: 90 degrees clockwise
_POSE_NAME = re.compile(r"frame-(\d{6})\.pose\.txt$")


@dataclass(frozen=True)
class RScanConfig:
    """Options of the 3RScan reader.

    ``align_to_reference``: put the scan into its reference scan's frame with the rescan
    transform of ``rescans_json`` (default: ``3RScan.json`` in the scan folder's parent);
    ``translation_unit``: unit of that transform's translation, ``"m"`` or ``"mm"``.
    """

    align_to_reference: bool = False
    rescans_json: Path | None = None
    translation_unit: str = "m"

    def __post_init__(self) -> None:
        if self.translation_unit not in ("m", "mm"):
            raise ValueError(f"translation_unit must be 'm' or 'mm', got {self.translation_unit!r}")
        if self.rescans_json is not None and not self.align_to_reference:
            raise ValueError("rescans_json is only read with align_to_reference=True")


# --- sequence files: a folder or a zip -----------------------------------------------------------


class SequenceFiles:
    """The members of ``sequence/`` or ``sequence.zip``, read one at a time."""

    def __init__(self, scan_dir: Path) -> None:
        folder, archive = scan_dir / SEQUENCE_DIR, scan_dir / SEQUENCE_ZIP
        self.zipped = not folder.is_dir() and archive.is_file()
        self.path = archive if self.zipped else folder
        if not self.zipped and not folder.is_dir():
            raise SceneError(folder, f"missing: neither {SEQUENCE_DIR}/ nor {SEQUENCE_ZIP} exists")
        self._zip: zipfile.ZipFile | None = None
        if self.zipped:
            names = [n for n in self._archive().namelist() if not n.endswith("/")]
            # members at the zip root (as the official prepare script unzips it) or all under
            # sequence/ (a zip of the folder)
            inside = bool(names) and all(n.startswith(f"{SEQUENCE_DIR}/") for n in names)
            prefix = f"{SEQUENCE_DIR}/" if inside else ""
            self._prefix = prefix
            self._names = {n[len(prefix) :] for n in names if n.startswith(prefix)}
        else:
            self._prefix = ""
            self._names = {p.name for p in folder.iterdir()}

    def __getstate__(self) -> dict:  # an open ZipFile does not pickle: reopen where unpickled
        return {**self.__dict__, "_zip": None}

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise SceneError(self.path, f"not a readable zip archive: {err}") from err
        return self._zip

    def where(self, name: str) -> Path:
        """The member as a path for messages (``.../sequence.zip/<name>`` for a zip member)."""
        return self.path / (self._prefix + name)

    def names(self) -> set[str]:
        return self._names

    def read(self, name: str) -> bytes:
        if name not in self._names:
            raise SceneError(self.where(name), "missing")
        try:
            if self.zipped:
                return self._archive().read(self._prefix + name)
            return (self.path / name).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise SceneError(self.where(name), f"unreadable: {err}") from err


# --- _info.txt -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceInfo:
    """``_info.txt``: intrinsics of the STORED (landscape) images, depth units, frame count."""

    color: Intrinsics
    depth: Intrinsics
    depth_shift: float  # raw depth value per metre (1000: millimetres)
    n_frames: int | None  # m_frames.size when given


def _info_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _info_intrinsics(values: dict[str, str], kind: str, where: Path) -> Intrinsics:
    key = f"m_calibration{kind}Intrinsic"
    try:
        K = np.array(values[key].split(), np.float64)
        width, height = (
            int(values[f"m_{kind.lower()}Width"]),
            int(values[f"m_{kind.lower()}Height"]),
        )
        if K.shape != (16,):
            raise ValueError(f"{key} has {K.size} numbers, expected 16 (row-major 4x4)")
        return Intrinsics.from_matrix(K.reshape(4, 4), width, height)
    except KeyError as err:
        raise SceneError(where, f"no {err.args[0]} line") from err
    except ValueError as err:
        raise SceneError(where, f"bad {kind.lower()} calibration: {err}") from err


def parse_info(text: str, where: Path) -> SequenceInfo:
    """``_info.txt`` contents; SceneError naming ``where`` when a needed key is missing or bad."""
    values = _info_values(text)
    color = _info_intrinsics(values, "Color", where)
    depth = _info_intrinsics(values, "Depth", where)
    try:
        shift = float(values.get("m_depthShift", "1000"))  # the FAQ: depth is in millimetres
        n = int(values["m_frames.size"]) if "m_frames.size" in values else None
    except ValueError as err:
        raise SceneError(where, f"bad m_depthShift or m_frames.size: {err}") from err
    if not shift > 0 or (n is not None and n < 0):
        raise SceneError(where, f"m_depthShift must be > 0 and m_frames.size >= 0 ({shift}, {n})")
    return SequenceInfo(color, depth, shift, n)


# --- frames --------------------------------------------------------------------------------------


def frame_name(frame_id: int, kind: str) -> str:
    """``frame-%06d.<kind>`` (kind: ``color.jpg``, ``depth.pgm``, ``pose.txt``)."""
    return f"frame-{frame_id:06d}.{kind}"


def _parse_pose(data: bytes, where: Path) -> np.ndarray:
    try:
        values = np.array(data.decode("ascii").split(), np.float64)
    except (UnicodeDecodeError, ValueError) as err:
        raise SceneError(where, f"not a 4x4 matrix of numbers: {err}") from err
    if values.shape != (16,):
        raise SceneError(where, f"has {values.size} numbers, expected 16 (row-major 4x4)")
    return values.reshape(4, 4)


class RScanFrames:
    """Frames of one 3RScan sequence, turned upright (``FrameSource``).

    Every pose is read when the source opens (cheap text); images are decoded on demand.
    """

    def __init__(self, files: SequenceFiles, info: SequenceInfo) -> None:
        self.files = files
        self.path = files.path
        self.info = info
        found = sorted(int(m.group(1)) for n in files.names() if (m := _POSE_NAME.match(n)))
        ids = range(info.n_frames) if info.n_frames is not None else found
        self._stored: dict[int, np.ndarray] = {}
        for fid in ids:
            name = frame_name(fid, "pose.txt")
            if name in files.names():
                self._stored[fid] = _parse_pose(files.read(name), files.where(name))
        self._all = list(ids)
        self._valid = [f for f in self._all if f in self._stored and pose_is_valid(self._stored[f])]
        self.color_intrinsics = rotate_intrinsics_upright(info.color, CLOCKWISE)
        self.depth_intrinsics = rotate_intrinsics_upright(info.depth, CLOCKWISE)

    def frame_ids(self) -> list[int]:
        return list(self._valid)

    def skipped_frame_ids(self) -> list[int]:
        """Frames up to ``m_frames.size`` whose pose file is missing or not finite."""
        valid = set(self._valid)
        return [f for f in self._all if f not in valid]

    def stored_pose(self, frame_id: int) -> np.ndarray:
        """Camera-to-world of the stored (landscape) image, as ``pose.txt`` holds it."""
        if frame_id not in self._stored:
            raise SceneError(self.files.where(frame_name(frame_id, "pose.txt")), "missing")
        return self._stored[frame_id]

    def pose(self, frame_id: int) -> np.ndarray:
        """Camera-to-world of the upright image (OpenCV axes, raw scan world, metres)."""
        return rotate_pose_upright(self.stored_pose(frame_id), CLOCKWISE)

    def _image(self, frame_id: int, kind: str, K: Intrinsics) -> np.ndarray:
        name = frame_name(frame_id, kind)
        data = np.frombuffer(self.files.read(name), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            raise SceneError(self.files.where(name), "cannot be decoded")
        if image.shape[:2] != (K.height, K.width):
            raise SceneError(self.files.where(name), f"is {image.shape[1]}x{image.shape[0]}, "
                             f"{INFO_FILE} says {K.width}x{K.height}")  # fmt: skip
        return image

    def load_frame(self, frame_id: int) -> Frame:
        """Upright colour (RGB), depth (uint16 mm) and pose of one frame."""
        T = self.pose(frame_id)
        bgr = self._image(frame_id, "color.jpg", self.info.color)
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            where = self.files.where(frame_name(frame_id, "color.jpg"))
            raise SceneError(where, f"expected a 3-channel colour image, got shape {bgr.shape}")
        depth = self._image(frame_id, "depth.pgm", self.info.depth)
        if depth.dtype != np.uint16 or depth.ndim != 2:
            where = self.files.where(frame_name(frame_id, "depth.pgm"))
            raise SceneError(where, f"expected 16-bit one-channel depth, got {depth.dtype} "
                             f"{depth.shape}")  # fmt: skip
        if self.info.depth_shift != 1000.0:
            mm = np.round(depth.astype(np.float64) * (1000.0 / self.info.depth_shift))
            depth = np.clip(mm, 0, 65535).astype(np.uint16)
        color = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        up = rotate_image_upright
        return Frame(frame_id, up(color, CLOCKWISE), up(depth, CLOCKWISE), T)


# --- rescans and the scene ------------------------------------------------------------------


def _column_major_44(values, where: Path, what: str) -> np.ndarray:
    T = np.asarray(values, np.float64)
    if T.shape != (16,) or not np.isfinite(T).all():
        raise SceneError(where, f"{what}: expected 16 finite numbers (column-major 4x4)")
    return T.reshape(4, 4, order="F")


def rescan_transform(rescans_json: Path, scan_id: str, translation_unit: str = "m") -> np.ndarray:
    """``T_reference_rescan`` (metres) of a scan from ``3RScan.json``; identity for a reference."""
    try:
        scenes = json.loads(rescans_json.read_text())
    except FileNotFoundError as err:
        raise SceneError(rescans_json, "missing (needed to align the rescan)") from err
    except (OSError, ValueError) as err:
        raise SceneError(rescans_json, f"not valid JSON: {err}") from err
    for scene in scenes if isinstance(scenes, list) else []:
        if scene.get("reference") == scan_id:
            return np.eye(4)
        for scan in scene.get("scans", []):
            if scan.get("reference") != scan_id:
                continue
            if "transform" not in scan:
                raise SceneError(rescans_json, f"rescan {scan_id} has no transform (test split?)")
            T = _column_major_44(scan["transform"], rescans_json, f"rescan {scan_id}")
            if translation_unit == "mm":
                T[:3, 3] /= 1000.0
            if np.abs(T[:3, 3]).max() > MAX_TRANSLATION_M:
                raise SceneError(rescans_json, f"rescan {scan_id} translation {T[:3, 3]} is over "
                                 f"{MAX_TRANSLATION_M} m: millimetres? (translation_unit='mm')")  # fmt: skip
            return T
    raise SceneError(rescans_json, f"scan {scan_id} is not listed (as reference or rescan)")


def scene_id_for(scan_dir: Path) -> str:
    """``3rscan-<scan_id>`` (``core.ids``; 3RScan ids are UUIDs: no dot in a sample key)."""
    return folder_scene_id(DATASET, scan_dir)


def is_scene_dir(path: Path) -> bool:
    """A 3RScan scan folder: the refined mesh, ``sequence.zip`` or ``sequence/_info.txt``."""
    path = Path(path)
    return (
        (path / MESH_FILE).is_file()
        or (path / SEQUENCE_ZIP).is_file()
        or (path / SEQUENCE_DIR / INFO_FILE).is_file()
    )


def _frames(scan_dir: Path) -> RScanFrames | None:
    if not (scan_dir / SEQUENCE_DIR).is_dir() and not (scan_dir / SEQUENCE_ZIP).is_file():
        return None  # a mesh-only scan
    files = SequenceFiles(scan_dir)
    info = parse_info(files.read(INFO_FILE).decode("utf-8", "replace"), files.where(INFO_FILE))
    return RScanFrames(files, info)


def load_scene(scan_dir: Path, config: RScanConfig | None = None) -> Scene:
    """Open a 3RScan scan folder (module docstring); scene id ``3rscan-<scan_id>``."""
    scan_dir = Path(scan_dir)
    config = config or RScanConfig()
    if not scan_dir.is_dir():
        raise SceneError(scan_dir, "scan directory not found")
    frames = _frames(scan_dir)
    mesh_file = scan_dir / MESH_FILE
    if frames is None and not mesh_file.is_file():
        raise SceneError(scan_dir, f"neither {MESH_FILE} nor {SEQUENCE_DIR}/ or {SEQUENCE_ZIP}")
    T_aligned_world = np.eye(4)
    if config.align_to_reference:
        json_path = config.rescans_json or scan_dir.parent / RESCANS_JSON
        T_aligned_world = rescan_transform(json_path, scan_dir.name, config.translation_unit)
    return Scene(
        scene_id_for(scan_dir),
        scan_dir,
        T_aligned_world,
        frames.color_intrinsics if frames else None,
        frames.depth_intrinsics if frames else None,
        [],
        mesh_file if mesh_file.is_file() else None,
        frames,
        read_mesh,
        dataset=DATASET,
    )
