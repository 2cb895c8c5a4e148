import numpy as np
import pytest
from ross3d_data.core.errors import SceneError
from ross3d_data.scannet import posed
from tiny_scenes import TINY_COLOR_K, TINY_DEPTH_K, rot_z, tiny_frame


def _write(d, ids=(0, 10, 20), bad=(10,)):
    posed.write_intrinsics(d, TINY_COLOR_K, TINY_DEPTH_K)
    frames = {}
    for i in ids:
        pose = np.full((4, 4), -np.inf) if i in bad else rot_z(i, (i / 10, 0, 1))
        frames[i] = tiny_frame(i, pose)
        posed.write_frame(d, frames[i])
    return frames


def test_roundtrip_frames_and_intrinsics(tmp_path):
    frames = _write(tmp_path)
    assert posed.is_posed_dir(tmp_path)
    assert posed.valid_frame_ids(tmp_path) == ([0, 20], [10])
    f = posed.read_frame(tmp_path, 20)
    np.testing.assert_array_equal(f.depth_mm_HW, frames[20].depth_mm_HW)
    assert np.abs(f.color_HW3.astype(int) - frames[20].color_HW3).mean() < 2.0
    np.testing.assert_allclose(f.T_world_cam, frames[20].T_world_cam, atol=1e-6)
    assert posed.read_intrinsics(tmp_path, "color", 0) == TINY_COLOR_K
    assert posed.read_intrinsics(tmp_path, "depth", 0) == TINY_DEPTH_K
    k = np.loadtxt(tmp_path / "intrinsic" / "intrinsic_color.txt")
    assert k.shape == (4, 4) and k[3, 3] == 1 and k[0, 0] == 60.0


def test_bad_files_name_file(tmp_path):
    _write(tmp_path)
    (tmp_path / "depth" / "20.png").unlink()
    with pytest.raises(SceneError, match=r"depth/20\.png: missing or undecodable depth"):
        posed.read_frame(tmp_path, 20)
    (tmp_path / "pose" / "0.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(SceneError, match=r"pose/0\.txt: expected a 4x4 matrix"):
        posed.read_matrix_44(tmp_path / "pose" / "0.txt")
    (tmp_path / "pose" / "abc.txt").write_text("")
    with pytest.raises(SceneError, match=r"abc\.txt: pose file name is not a frame index"):
        posed.pose_ids(tmp_path)


def test_8bit_depth_is_rejected(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "d.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(SceneError, match=r"d\.png: depth must be single-channel uint16"):
        posed.read_depth(tmp_path / "d.png")
