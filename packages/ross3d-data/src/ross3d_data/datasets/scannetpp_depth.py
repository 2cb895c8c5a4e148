"""ScanNet++ ``iphone/depth.bin``: both encodings the official ``prepare_iphone_data.py``
``extract_depth`` reads, as uint16 millimetres (0 = invalid) of 256x192 (its fixed size).

- ``stream``: the whole file is ONE raw-deflate stream (``zlib`` ``wbits=-15``) of float32 metres,
  frames back to back, row-major 192x256.
- ``per-frame``: records ``[uint32 little-endian size][size bytes]`` to the end of the file, one
  per frame; a payload is an lz4 block (no stored size) of uint16 mm, else raw deflate of
  float32 metres (the official order: lz4 first, deflate on any lz4 failure).

The official script tries ``stream`` first and falls back to ``per-frame`` on any error. Here the
cheap test comes first: a file whose size fields chain exactly to its end is ``per-frame`` unless
it also decodes whole as a deflate stream; one that does not chain but starts as a deflate stream
is ``stream``; anything else is a one-line SceneError. Metres become mm ROUNDED (the official
``astype(uint16)`` truncates, which turns 1.234 m stored as float32 into 1233 mm); non-finite,
negative or over 65.535 m depths become 0.

A per-frame file is indexed once (size fields only) and read record by record. A stream cannot
be seeked: the first read decodes it once, keeping the frames named in ``count(wanted=...)`` (as
uint16: 96 KiB a frame) and counting the rest.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError

DEPTH_W, DEPTH_H = 256, 192
PIXELS = DEPTH_W * DEPTH_H
_FLOAT_BYTES, _MM_BYTES = PIXELS * 4, PIXELS * 2
_NEITHER = (
    "neither one raw-deflate stream of float32 metres nor [uint32 size][lz4 uint16 mm | "
    "raw-deflate float32 m] records (prepare_iphone_data.extract_depth)"
)


def metres_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 mm, rounded; non-finite, <= 0 or > 65.535 m -> 0."""
    mm = np.asarray(depth_m, np.float64) * 1000.0
    ok = np.isfinite(mm) & (mm > 0) & (mm <= 65535)
    return np.where(ok, np.rint(np.where(ok, mm, 0)), 0).astype(np.uint16)


def _record_offsets(path: Path, size: int) -> list[tuple[int, int]] | None:
    """(payload offset, payload size) of each record when the size fields chain exactly to the
    end of the file (every payload non-empty), else None."""
    records, pos = [], 0
    with path.open("rb") as f:
        while pos < size:
            head = f.read(4)
            if len(head) < 4:
                return None
            (n,) = struct.unpack("<I", head)
            if n == 0 or pos + 4 + n > size:
                return None
            records.append((pos + 4, n))
            pos += 4 + n
            f.seek(pos)
    return records


def _starts_as_deflate(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(1 << 16)
    try:
        zlib.decompressobj(-zlib.MAX_WBITS).decompress(head, _FLOAT_BYTES)
    except zlib.error:
        return False
    return True


class DepthStream:
    """Random access to the depth frames of one ``depth.bin`` (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SceneError(self.path, "depth file missing")
        size = self.path.stat().st_size
        if size == 0:
            raise SceneError(self.path, "empty depth file")
        self._records = _record_offsets(self.path, size)
        deflate = _starts_as_deflate(self.path)
        if self._records is not None and deflate and self._whole_stream_ok():
            self._records = None
        if self._records is None and not deflate:
            raise SceneError(self.path, _NEITHER)
        self.encoding = "per-frame" if self._records is not None else "stream"
        self._cache: dict[int, np.ndarray] = {}
        self._n_stream: int | None = None
        if self._records is not None:
            self.read(0)  # a corrupt first record fails at open, not mid-run

    def _whole_stream_ok(self) -> bool:
        try:
            for _ in self._stream_frames():
                pass
        except SceneError:
            return False
        return True

    def count(self, wanted: set[int] | None = None) -> int:
        """Number of frames; for a stream, decoding it once and keeping the ``wanted`` frames."""
        if self._records is not None:
            return len(self._records)
        if self._n_stream is None:
            self._fill(set(wanted or ()))
        return self._n_stream

    def read(self, frame_id: int) -> np.ndarray:
        """uint16 mm depth (192, 256) of one frame."""
        if self._records is not None:
            return self._read_record(frame_id)
        if frame_id not in self._cache:
            self._fill({frame_id})
        if frame_id not in self._cache:
            raise SceneError(self.path, f"frame {frame_id} not in the {self._n_stream} frames")
        return self._cache[frame_id].copy()

    def _read_record(self, frame_id: int) -> np.ndarray:
        if not 0 <= frame_id < len(self._records):
            raise SceneError(self.path, f"frame {frame_id} not in the {len(self._records)} records")
        offset, n = self._records[frame_id]
        with self.path.open("rb") as f:
            f.seek(offset)
            payload = f.read(n)
        return self._decode_record(payload, frame_id)

    def _decode_record(self, payload: bytes, frame_id: int) -> np.ndarray:
        import lz4.block

        try:
            raw = lz4.block.decompress(payload, uncompressed_size=_MM_BYTES)
            if len(raw) == _MM_BYTES:
                return np.frombuffer(raw, "<u2").reshape(DEPTH_H, DEPTH_W).astype(np.uint16)
        except (lz4.block.LZ4BlockError, ValueError):
            pass  # the official order: lz4 first, then raw deflate
        try:
            raw = zlib.decompress(payload, wbits=-zlib.MAX_WBITS)
        except zlib.error:
            raw = b""
        if len(raw) != _FLOAT_BYTES:
            raise SceneError(self.path, f"record {frame_id}: {_NEITHER}")
        return metres_to_mm(np.frombuffer(raw, "<f4").reshape(DEPTH_H, DEPTH_W))

    def _fill(self, keep: set[int]) -> None:
        n = 0
        for frame_id, frame_bytes in enumerate(self._stream_frames()):
            if frame_id in keep:
                depth = np.frombuffer(frame_bytes, "<f4").reshape(DEPTH_H, DEPTH_W)
                self._cache[frame_id] = metres_to_mm(depth)
            n = frame_id + 1
        self._n_stream = n

    def _stream_frames(self) -> Iterator[bytes]:
        """Each frame's float32 bytes of the one deflate stream; SceneError when the stream is
        corrupt, truncated, followed by other bytes, or not a whole number of frames."""
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = bytearray()
        with self.path.open("rb") as f:
            while chunk := f.read(1 << 20):
                while chunk:  # bounded output: a run of zero depth inflates ~1000x
                    try:
                        pending += d.decompress(chunk, 4 * _FLOAT_BYTES)
                    except zlib.error as err:
                        raise SceneError(self.path, f"{_NEITHER} ({err})") from err
                    chunk = d.unconsumed_tail
                    while len(pending) >= _FLOAT_BYTES:
                        yield bytes(pending[:_FLOAT_BYTES])
                        del pending[:_FLOAT_BYTES]
                if d.eof:
                    break
            trailing = bool(d.unused_data) or bool(f.read(1))
        try:
            pending += d.flush()  # output zlib still held when the input ran out
        except zlib.error as err:
            raise SceneError(self.path, f"{_NEITHER} ({err})") from err
        while len(pending) >= _FLOAT_BYTES:
            yield bytes(pending[:_FLOAT_BYTES])
            del pending[:_FLOAT_BYTES]
        if not d.eof or trailing:
            raise SceneError(self.path, f"{_NEITHER} (deflate stream truncated or followed by "
                                        "other bytes)")  # fmt: skip
        if pending:
            raise SceneError(self.path, f"{len(pending)} bytes after the last whole frame")
