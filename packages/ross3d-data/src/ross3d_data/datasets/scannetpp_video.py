"""Random access to the frames of a video file (ScanNet++ ``iphone/rgb.mkv``) with PyAV.

Frame ``n`` is the n-th frame in presentation order, counted from 0: what ``ffmpeg -i rgb.mkv
-start_number 0 frame_%06d.jpg`` names ``frame_%06d`` (image output keeps every decoded frame)
and what ``select='eq(n,i)'`` picks, the official ScanNet++ extraction. The packets are indexed
once without decoding (their timestamps sorted give the presentation order; the keyframes are
the seek points); a read seeks to the keyframe at or before the frame and decodes forward, so
only the frames asked for (and their group of pictures) are decoded. A stream without
timestamps is decoded from the start instead.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from ross3d_data.core.errors import SceneError


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise SceneError(path, f"cannot open the video: {err}") from err
    if not container.streams.video:
        container.close()
        raise SceneError(path, "no video stream")
    return container


class VideoFrames:
    """Frames of the first video stream of ``path`` as uint8 RGB (H, W, 3)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SceneError(self.path, "video file missing")
        with _open(self.path) as container:
            stream = container.streams.video[0]
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
        self._pts: list[int] | None = None  # presentation timestamps, frame order
        self._keyframes: list[int] = []  # sorted keyframe timestamps
        self._untimed, self._count = False, 0

    def _index(self) -> list[int] | None:
        """Timestamps of all frames in presentation order (None: some packet has none)."""
        if self._pts is None:
            import av

            pts, keys, untimed = [], [], False
            with _open(self.path) as container:
                try:
                    for packet in container.demux(container.streams.video[0]):
                        if packet.size == 0:
                            continue  # the demuxer's end-of-stream packet
                        untimed |= packet.pts is None
                        pts.append(packet.pts)
                        if packet.is_keyframe and packet.pts is not None:
                            keys.append(packet.pts)
                except av.FFmpegError as err:
                    raise SceneError(self.path, f"corrupt video: {err}") from err
            self._untimed = untimed
            self._pts = [] if untimed else sorted(pts)
            self._count = len(pts)
            self._keyframes = sorted(keys)
        return None if self._untimed else self._pts

    def count(self) -> int:
        self._index()
        return self._count

    def read(self, frame_id: int) -> np.ndarray:
        """uint8 RGB of frame ``frame_id``."""
        pts = self._index()
        if not 0 <= frame_id < self._count:
            raise SceneError(self.path, f"frame {frame_id} not in the {self._count} video frames")
        if pts is None:
            return self._read_from_start(frame_id)
        target = pts[frame_id]
        k = bisect.bisect_right(self._keyframes, target) - 1
        if k < 0:
            return self._read_from_start(frame_id)
        image = self._read_after_seek(self._keyframes[k], target)
        return image if image is not None else self._read_from_start(frame_id)

    def _read_after_seek(self, keyframe_pts: int, target_pts: int) -> np.ndarray | None:
        import av

        with _open(self.path) as container:
            stream = container.streams.video[0]
            try:
                container.seek(keyframe_pts, stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.pts == target_pts:
                        return frame.to_ndarray(format="rgb24")
                    if frame.pts is not None and frame.pts > target_pts:
                        return None  # landed after the frame: decode from the start instead
            except av.FFmpegError as err:
                raise SceneError(self.path, f"corrupt video: {err}") from err
        return None

    def _read_from_start(self, frame_id: int) -> np.ndarray:
        import av

        with _open(self.path) as container:
            try:
                for n, frame in enumerate(container.decode(container.streams.video[0])):
                    if n == frame_id:
                        return frame.to_ndarray(format="rgb24")
            except av.FFmpegError as err:
                raise SceneError(self.path, f"corrupt video: {err}") from err
        raise SceneError(self.path, f"frame {frame_id} could not be decoded")
