"""ScanNet ``.sens`` RGB-D streams (layout of ScanNet's SensReader, little-endian).

Header: ``uint32 version`` (4), ``uint64 strlen`` + sensor name, four float32 4x4 matrices
(intrinsic colour, extrinsic colour, intrinsic depth, extrinsic depth), ``int32`` colour and depth
compression types, ``uint32`` colour width/height and depth width/height, ``float32 depth_shift``
(raw depth units per metre, usually 1000), ``uint64 num_frames``. Each frame: float32 4x4
camera-to-world, ``uint64`` colour and depth timestamps, ``uint64`` colour and depth byte counts,
then the compressed colour and depth bytes. Lost tracking is marked by a -inf pose.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Frame, Intrinsics, pose_is_valid

COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_FRAME_HEAD = struct.Struct("<16f4Q")  # pose, ts colour, ts depth, colour bytes, depth bytes


@dataclass(frozen=True)
class SensHeader:
    """Everything before the frames."""

    color_intrinsics: Intrinsics
    depth_intrinsics: Intrinsics
    num_frames: int
    depth_shift: float = 1000.0
    color_compression: int = 2
    depth_compression: int = 1
    sensor_name: str = "StructureSensor"
    version: int = 4
    extrinsic_color_44: np.ndarray = field(default_factory=lambda: np.eye(4))
    extrinsic_depth_44: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass(frozen=True)
class SensRecord:
    """One frame still compressed, plus where it starts in the file."""

    frame_id: int
    T_world_cam: np.ndarray  # float64 4x4, may hold -inf
    color_bytes: bytes
    depth_bytes: bytes
    offset: int


def _read_exact(f: BinaryIO, n: int, path: Path, where: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise SceneError(path, f"truncated in {where}: wanted {n} bytes, file ended after {len(b)}")
    return b


def _read_header(f: BinaryIO, path: Path) -> SensHeader:
    version, strlen = struct.unpack("<IQ", _read_exact(f, 12, path, "header"))
    if version != 4 or strlen > 4096:
        raise SceneError(
            path, f"not a ScanNet .sens file (version {version}, name length {strlen})"
        )
    name = _read_exact(f, strlen, path, "header").decode("utf-8", errors="replace")
    mats = np.frombuffer(_read_exact(f, 256, path, "header"), "<f4").reshape(4, 4, 4)
    cc, dc, cw, ch, dw, dh, shift, n = struct.unpack("<2i4IfQ", _read_exact(f, 36, path, "header"))
    if cc not in (0, 1, 2) or dc not in (0, 1):
        raise SceneError(path, f"unsupported compression colour={COLOR_COMPRESSION.get(cc, cc)} "
                               f"depth={DEPTH_COMPRESSION.get(dc, dc)}")  # fmt: skip
    try:
        color = Intrinsics.from_matrix(mats[0].astype(np.float64), cw, ch)
        depth = Intrinsics.from_matrix(mats[2].astype(np.float64), dw, dh)
    except ValueError as e:
        raise SceneError(path, f"bad intrinsics in header: {e}") from None
    return SensHeader(color, depth, n, float(shift), cc, dc, name, version,
                      mats[1].astype(np.float64), mats[3].astype(np.float64))  # fmt: skip


def read_sens_header(path: Path) -> SensHeader:
    """Header of a ``.sens`` file (cheap: reads ~330 bytes)."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(path, ".sens file not found")
    with path.open("rb") as f:
        return _read_header(f, path)


def iter_sens(path: Path, every: int = 1, with_images: bool = True) -> Iterator[SensRecord]:
    """Records of frames ``0, every, 2*every, ...`` (invalid poses included; callers skip them).

    Frames not selected, and the images when ``with_images`` is False, are seeked over, so
    indexing a stream reads only the 96-byte frame heads. Truncation raises SceneError naming the
    file and the frame.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        header = _read_header(f, path)
        for i in range(header.num_frames):
            offset = f.tell()
            where = f"frame {i} of {header.num_frames}"
            head = _FRAME_HEAD.unpack(_read_exact(f, _FRAME_HEAD.size, path, where))
            n_color, n_depth = head[18], head[19]
            if i % every or not with_images:
                f.seek(n_color + n_depth, 1)
                if f.tell() > size:
                    raise SceneError(path, f"truncated in {where}: images run past end of file")
                if i % every:
                    continue
                color_b = depth_b = b""
            else:
                color_b = _read_exact(f, n_color, path, where)
                depth_b = _read_exact(f, n_depth, path, where)
            T = np.asarray(head[:16], np.float64).reshape(4, 4)
            yield SensRecord(i, T, color_b, depth_b, offset)


def read_record_at(path: Path, offset: int, frame_id: int) -> SensRecord:
    """The record starting at byte ``offset`` (from ``iter_sens``)."""
    with Path(path).open("rb") as f:
        f.seek(offset)
        where = f"frame {frame_id}"
        head = _FRAME_HEAD.unpack(_read_exact(f, _FRAME_HEAD.size, path, where))
        color_b = _read_exact(f, head[18], path, where)
        depth_b = _read_exact(f, head[19], path, where)
    return SensRecord(
        frame_id, np.asarray(head[:16], np.float64).reshape(4, 4), color_b, depth_b, offset
    )


def decode_color(path: Path, header: SensHeader, rec: SensRecord) -> np.ndarray:
    """uint8 RGB HxWx3 from JPEG/PNG/raw colour bytes."""
    c = header.color_intrinsics
    if header.color_compression == 0:
        color = np.frombuffer(rec.color_bytes, np.uint8)
        color = (
            color.reshape(c.height, c.width, 3) if color.size == c.height * c.width * 3 else None
        )
    else:
        bgr = cv2.imdecode(np.frombuffer(rec.color_bytes, np.uint8), cv2.IMREAD_COLOR)
        color = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if color is None or color.shape[:2] != (c.height, c.width):
        raise SceneError(
            path, f"frame {rec.frame_id}: colour does not decode to {c.width}x{c.height}"
        )
    return color


def decode_depth_mm(path: Path, header: SensHeader, rec: SensRecord) -> np.ndarray:
    """uint16 millimetres HxW from zlib/raw depth (rescaled when depth_shift is not 1000)."""
    d = header.depth_intrinsics
    try:
        raw = zlib.decompress(rec.depth_bytes) if header.depth_compression == 1 else rec.depth_bytes
    except zlib.error as e:
        raise SceneError(path, f"frame {rec.frame_id}: corrupt zlib depth ({e})") from None
    if len(raw) != d.width * d.height * 2:
        raise SceneError(
            path,
            f"frame {rec.frame_id}: depth has {len(raw)} bytes, expected {d.width}x{d.height} uint16",
        )
    depth = np.frombuffer(raw, "<u2").reshape(d.height, d.width)
    if header.depth_shift != 1000.0:  # store millimetres whatever the stream's unit
        depth = np.round(depth * (1000.0 / header.depth_shift)).clip(0, 65535)
    return depth.astype(np.uint16)


def decode_record(path: Path, header: SensHeader, rec: SensRecord) -> Frame:
    """Decoded colour and depth of one record (``path`` only names the file in errors)."""
    return Frame(
        rec.frame_id,
        decode_color(path, header, rec),
        decode_depth_mm(path, header, rec),
        rec.T_world_cam,
    )


@dataclass
class SensStats:
    """Counts of a pass over a stream."""

    read: int = 0
    skipped_invalid_pose: int = 0


def read_sens_frames(
    path: Path, every: int = 10, stats: SensStats | None = None
) -> Iterator[Frame]:
    """Decoded frames ``0, every, ...`` with finite poses; -inf/nan poses are counted in ``stats``."""
    header = read_sens_header(path)
    for rec in iter_sens(path, every):
        if not pose_is_valid(rec.T_world_cam):
            if stats is not None:
                stats.skipped_invalid_pose += 1
            continue
        if stats is not None:
            stats.read += 1
        yield decode_record(Path(path), header, rec)


def encode_frame(frame: Frame, jpeg_quality: int = 95) -> tuple[bytes, bytes]:
    """(JPEG colour bytes, zlib uint16 depth bytes) as ScanNet stores them."""
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(frame.color_HW3, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])  # fmt: skip
    if not ok:
        raise ValueError(f"frame {frame.frame_id}: JPEG encoding failed")
    return jpg.tobytes(), zlib.compress(np.ascontiguousarray(frame.depth_mm_HW, "<u2").tobytes())


def write_sens(
    path: Path, header: SensHeader, frames: Iterable[Frame], jpeg_quality: int = 95
) -> None:
    """Write a ``.sens`` with JPEG colour and zlib depth (``header.num_frames`` must match).

    Frames hold millimetres, so ``depth_shift`` is always written as 1000 (``header.depth_shift``
    is ignored). Frame timestamps are written as ``frame_id * 33333`` microseconds (30 Hz).
    """
    name = header.sensor_name.encode()
    mats = [header.color_intrinsics.matrix_44(), header.extrinsic_color_44,
            header.depth_intrinsics.matrix_44(), header.extrinsic_depth_44]  # fmt: skip
    c, d = header.color_intrinsics, header.depth_intrinsics
    n = 0
    with Path(path).open("wb") as f:
        f.write(struct.pack("<IQ", 4, len(name)) + name)
        f.write(np.stack(mats).astype("<f4").tobytes())
        f.write(struct.pack("<2i4IfQ", 2, 1, c.width, c.height, d.width, d.height, 1000.0,
                            header.num_frames))  # fmt: skip
        for frame in frames:
            color_b, depth_b = encode_frame(frame, jpeg_quality)
            ts = frame.frame_id * 33333
            f.write(np.asarray(frame.T_world_cam, "<f4").tobytes())
            f.write(struct.pack("<4Q", ts, ts, len(color_b), len(depth_b)) + color_b + depth_b)
            n += 1
    if n != header.num_frames:
        raise ValueError(f"{path}: header says {header.num_frames} frames but {n} were written")
