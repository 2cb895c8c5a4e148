import json

import numpy as np
import pytest
from ross3d_data.core.errors import SceneError
from ross3d_data.core.records import Intrinsics
from ross3d_data.scannet.files import (
    axis_alignment,
    meta_intrinsics,
    read_meta,
    read_objects,
    write_meta,
)

SCANNET_TXT = """axisAlignment = 0.945519 0.325568 0.000000 -5.384390 -0.325568 0.945519 0.000000 -2.871780 0.000000 0.000000 1.000000 -0.064350 0.000000 0.000000 0.000000 1.000000
colorHeight = 968
colorWidth = 1296
depthHeight = 480
depthWidth = 640
fx_color = 1170.187988
fx_depth = 571.623718
fy_color = 1170.187988
fy_depth = 571.623718
mx_color = 647.750000
mx_depth = 319.500000
my_color = 483.750000
my_depth = 239.500000
numColorFrames = 5578
sceneType = Apartment
"""


def test_meta_alignment_is_row_major_and_intrinsics_parsed(tmp_path):
    (tmp_path / "s.txt").write_text(SCANNET_TXT)
    meta = read_meta(tmp_path / "s.txt")
    T = axis_alignment(meta, tmp_path / "s.txt")
    assert T[0, 1] == pytest.approx(0.325568) and T[1, 0] == pytest.approx(-0.325568)
    np.testing.assert_allclose(T[:3, 3], [-5.38439, -2.87178, -0.06435])
    assert meta["sceneType"] == "Apartment"
    c = meta_intrinsics(meta, "color", tmp_path / "s.txt")
    assert c == Intrinsics(1170.187988, 1170.187988, 647.75, 483.75, 1296, 968)
    assert meta_intrinsics(meta, "depth", tmp_path / "s.txt").width == 640


def test_missing_alignment_is_identity_and_bad_one_names_file(tmp_path):
    np.testing.assert_array_equal(axis_alignment({}, tmp_path / "s.txt"), np.eye(4))
    with pytest.raises(SceneError, match=r"s\.txt: axisAlignment has 3 values"):
        axis_alignment({"axisAlignment": "1 0 0"}, tmp_path / "s.txt")
    (tmp_path / "b.txt").write_text("axisAlignment 1 2 3\n")
    with pytest.raises(SceneError, match=r"b\.txt: line 1 is not 'key = value'"):
        read_meta(tmp_path / "b.txt")


def test_write_meta_roundtrip(tmp_path):
    T = np.array([[0, -1, 0, 2.5], [1, 0, 0, -1.25], [0, 0, 1, 0.1], [0, 0, 0, 1]], float)
    K = Intrinsics(100.5, 101.0, 50.0, 40.0, 100, 80)
    write_meta(tmp_path / "m.txt", T, K, K)
    meta = read_meta(tmp_path / "m.txt")
    np.testing.assert_allclose(axis_alignment(meta, tmp_path / "m.txt"), T)
    assert meta_intrinsics(meta, "depth", tmp_path / "m.txt") == K


def test_objects_boxes_from_their_segments(tmp_path):
    verts = np.array([[0, 0, 0], [2, 1, 0], [1, 3, 4], [9, 9, 9], [-1, 0, 1]], np.float32)
    (tmp_path / "segs.json").write_text(json.dumps({"segIndices": [5, 5, 6, 7, 8]}))
    groups = [
        {"objectId": 3, "label": "desk", "segments": [5, 6]},
        {"objectId": 4, "label": "lamp", "segments": [8]},
        {"objectId": 5, "label": "ghost", "segments": [99]},  # covers no vertex: dropped
    ]
    (tmp_path / "agg.json").write_text(json.dumps({"segGroups": groups}))
    objs = read_objects(tmp_path / "agg.json", tmp_path / "segs.json", verts)
    assert [(o.object_id, o.label) for o in objs] == [(3, "desk"), (4, "lamp")]
    np.testing.assert_allclose(objs[0].box_6, [1, 1.5, 2, 2, 3, 4])
    np.testing.assert_allclose(objs[1].box_6, [-1, 0, 1, 0, 0, 0])


def test_segs_length_mismatch_and_malformed_json_name_file(tmp_path):
    (tmp_path / "segs.json").write_text(json.dumps({"segIndices": [0, 0]}))
    (tmp_path / "agg.json").write_text("{not json")
    with pytest.raises(
        SceneError, match=r"segs\.json: segIndices has 2 entries but the mesh has 3"
    ):
        read_objects(tmp_path / "agg.json", tmp_path / "segs.json", np.zeros((3, 3)))
    with pytest.raises(SceneError, match=r"agg\.json: cannot read JSON"):
        read_objects(tmp_path / "agg.json", tmp_path / "segs.json", np.zeros((2, 3)))
