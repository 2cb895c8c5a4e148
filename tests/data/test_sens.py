import struct

import numpy as np
import pytest
from ross3d_data.core.errors import SceneError
from ross3d_data.scannet.sens import (
    SensHeader,
    SensStats,
    iter_sens,
    read_sens_frames,
    read_sens_header,
    write_sens,
)
from tiny_scenes import TINY_COLOR_K, TINY_DEPTH_K, rot_z, tiny_frame

INF = np.full((4, 4), -np.inf)
NAN_POSE = np.eye(4) * np.nan


def _write(path, n=6, bad=None):
    bad = bad or {2: INF, 3: NAN_POSE}
    frames = [tiny_frame(i, bad.get(i, rot_z(15.0 * i, (0.5 * i, 1.0, 1.2)))) for i in range(n)]
    write_sens(path, SensHeader(TINY_COLOR_K, TINY_DEPTH_K, n, sensor_name="test"), frames)
    return frames


def test_header_roundtrip(tmp_path):
    _write(tmp_path / "s.sens")
    h = read_sens_header(tmp_path / "s.sens")
    assert h.color_intrinsics == TINY_COLOR_K and h.depth_intrinsics == TINY_DEPTH_K
    assert (h.num_frames, h.depth_shift, h.color_compression, h.depth_compression) == (
        6,
        1000.0,
        2,
        1,
    )
    assert h.sensor_name == "test"


def test_frames_decode_and_invalid_poses_are_skipped_and_counted(tmp_path):
    written = _write(tmp_path / "s.sens")
    stats = SensStats()
    got = list(read_sens_frames(tmp_path / "s.sens", every=1, stats=stats))
    assert [f.frame_id for f in got] == [0, 1, 4, 5]
    assert (stats.read, stats.skipped_invalid_pose) == (4, 2)
    for f in got:
        ref = written[f.frame_id]
        assert f.color_HW3.shape == (48, 64, 3) and f.color_HW3.dtype == np.uint8
        assert np.abs(f.color_HW3.astype(int) - ref.color_HW3).mean() < 2.0  # JPEG q95
        np.testing.assert_array_equal(f.depth_mm_HW, ref.depth_mm_HW)  # zlib: exact
        assert f.depth_mm_HW.dtype == np.uint16
        np.testing.assert_allclose(f.T_world_cam, ref.T_world_cam, atol=1e-6)


def test_every_nth_frame(tmp_path):
    _write(tmp_path / "s.sens", n=7)
    stats = SensStats()
    ids = [f.frame_id for f in read_sens_frames(tmp_path / "s.sens", every=3, stats=stats)]
    assert ids == [0, 6] and stats.skipped_invalid_pose == 1  # frame 3 has a nan pose
    heads = list(iter_sens(tmp_path / "s.sens", with_images=False))
    assert [r.frame_id for r in heads] == list(range(7)) and heads[0].color_bytes == b""


def test_depth_shift_other_than_1000_is_converted_to_mm(tmp_path):
    written = _write(tmp_path / "s.sens", n=1)
    data = bytearray((tmp_path / "s.sens").read_bytes())
    at = 4 + 8 + len(b"test") + 256 + 8 + 16  # version, strlen, name, 4 matrices, 2 enums, 4 sizes
    assert struct.unpack_from("<f", data, at)[0] == 1000.0
    struct.pack_into("<f", data, at, 5000.0)  # TUM-style units: 1/5000 m
    (tmp_path / "t.sens").write_bytes(bytes(data))
    f = next(read_sens_frames(tmp_path / "t.sens", every=1))
    np.testing.assert_array_equal(f.depth_mm_HW, np.round(written[0].depth_mm_HW / 5.0))


def test_truncated_sens_names_file_and_frame(tmp_path):
    _write(tmp_path / "scene0001_00.sens", n=6)
    offsets = [r.offset for r in iter_sens(tmp_path / "scene0001_00.sens", with_images=False)]
    data = (tmp_path / "scene0001_00.sens").read_bytes()
    (tmp_path / "scene0001_00.sens").write_bytes(data[: offsets[4] + 150])
    with pytest.raises(SceneError, match=r"scene0001_00\.sens: truncated in frame 4 of 6"):
        list(read_sens_frames(tmp_path / "scene0001_00.sens", every=1))
    with pytest.raises(SceneError, match=r"scene0001_00\.sens: truncated in frame 4"):
        list(iter_sens(tmp_path / "scene0001_00.sens", with_images=False))


def test_not_a_sens_file(tmp_path):
    (tmp_path / "x.sens").write_bytes(b"PK\x03\x04 definitely a zip file, not a stream" * 3)
    with pytest.raises(SceneError, match=r"x\.sens: not a ScanNet \.sens file"):
        read_sens_header(tmp_path / "x.sens")
    (tmp_path / "y.sens").write_bytes(b"\x04\x00")
    with pytest.raises(SceneError, match=r"y\.sens: truncated in header"):
        read_sens_header(tmp_path / "y.sens")


def test_corrupt_depth_stream_names_frame(tmp_path):
    _write(tmp_path / "s.sens", n=2)
    rec = list(iter_sens(tmp_path / "s.sens"))[1]
    data = bytearray((tmp_path / "s.sens").read_bytes())
    depth_at = rec.offset + 96 + len(rec.color_bytes)
    data[depth_at : depth_at + 8] = b"\xff" * 8
    (tmp_path / "s.sens").write_bytes(bytes(data))
    with pytest.raises(SceneError, match=r"s\.sens: frame 1: corrupt zlib depth"):
        list(read_sens_frames(tmp_path / "s.sens", every=1))


def test_writer_checks_frame_count(tmp_path):
    with pytest.raises(ValueError, match="header says 3 frames but 1 were written"):
        write_sens(tmp_path / "s.sens", SensHeader(TINY_COLOR_K, TINY_DEPTH_K, 3),
                   [tiny_frame(0, np.eye(4))])  # fmt: skip
