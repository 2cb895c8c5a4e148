"""`ross3d-data proposals`: the published extract_pred_box.py rule on mask files in LEO's layout
(scipy sparse [masks x points] over the aligned vh_clean_2.ply vertices in file order), with
boxes computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ross3d_benchmarks import read_boxes_json
from ross3d_data.cli import app
from ross3d_data.core.records import Mesh
from ross3d_data.proposals import ProposalsConfig, boxes_from_masks, make_proposals
from ross3d_data.scannet.ply import write_ply
from scipy import sparse
from typer.testing import CliRunner

# raw (not aligned) vertices, in file order
RAW = [(0, 0, 0), (1, 0, 0), (0, 2, 0), (0, 0, 3), (1, 2, 3), (5, 5, 5)]
# axisAlignment: 90 degrees about z, then +10 in x: (x, y, z) -> (10 - y, x, z)
ALIGN = [[0, -1, 0, 10], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
# aligned: v0 (10,0,0) v1 (10,1,0) v2 (8,0,0) v3 (10,0,3) v4 (8,1,3) v5 (5,5,5)
MASKS = [
    [1, 1, 1, 0, 0, 0],  # x 8..10, y 0..1, z 0
    [0, 0, 0, 1, 1, 0],  # x 8..10, y 0..1, z 3
    [2, 0, 0, 0, 0, 1],  # only v5: an entry of 2 is not `mask == 1` (line 34)
    [0, 0, 0, 0, 0, 0],  # empty: the published script drops the scene if it is among the top
]
BOXES = [[9.0, 0.5, 0.0, 2.0, 1.0, 0.0], [9.0, 0.5, 3.0, 2.0, 1.0, 0.0], [5.0, 5.0, 5.0, 0, 0, 0]]


def _scene(root, scene_id: str, masks=MASKS, mask_dir=None):
    folder = root / "scans" / scene_id
    folder.mkdir(parents=True)
    mesh = Mesh(
        np.array(RAW, dtype=np.float32),
        np.full((len(RAW), 3), 128, dtype=np.uint8),
        np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int32),
    )
    write_ply(folder / f"{scene_id}_vh_clean_2.ply", mesh)
    align = " ".join(str(float(v)) for row in ALIGN for v in row)
    (folder / f"{scene_id}.txt").write_text(f"axisAlignment = {align}\n")
    if masks is not None:
        mask_dir = mask_dir or root / "mask"
        mask_dir.mkdir(exist_ok=True)
        matrix = sparse.csr_matrix(np.array(masks, dtype=np.float64))
        sparse.save_npz(mask_dir / f"{scene_id}.mask.npz", matrix)
    return folder


def test_boxes_are_min_max_of_the_first_masks():
    points = np.array([(10, 0, 0), (10, 1, 0), (8, 0, 0), (10, 0, 3), (8, 1, 3), (5, 5, 5)])
    masks = sparse.csr_matrix(np.array(MASKS))
    assert boxes_from_masks(masks, points, top=3) == BOXES
    assert boxes_from_masks(masks, points, top=1) == BOXES[:1]
    with pytest.raises(ValueError, match="mask 3 selects no point"):
        boxes_from_masks(masks, points, top=50)
    with pytest.raises(ValueError, match="5 vertices"):
        boxes_from_masks(masks, points[:5], top=3)


def test_command_writes_the_published_layout(tmp_path):
    _scene(tmp_path, "scene0000_00", masks=MASKS[:3])
    _scene(tmp_path, "scene0001_00", masks=MASKS)  # empty 4th mask: dropped at --top 50
    _scene(tmp_path, "scene0002_00", masks=None)  # no mask file: dropped
    out = tmp_path / "scannet_val_pred_box.json"
    args = ["proposals", str(tmp_path / "scans"), "--masks", str(tmp_path / "mask"), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # some scenes failed, the rest written
    assert json.loads(out.read_text()) == {"scannet/scene0000_00": BOXES}
    assert read_boxes_json(out) == {"scene0000_00": dict(enumerate(BOXES))}
    result = CliRunner().invoke(app, [*args, "--top", "3"])
    assert result.exit_code == 1  # scene0002_00 still has no mask file
    assert json.loads(out.read_text()) == {
        "scannet/scene0000_00": BOXES,
        "scannet/scene0001_00": BOXES,
    }


def test_failures_name_the_file(tmp_path):
    _scene(tmp_path, "scene0000_00", masks=[row[:5] for row in MASKS])
    _scene(tmp_path, "scene0001_00", masks=None)
    (tmp_path / "mask" / "scene0001_00.mask.npz").write_bytes(b"not an npz")
    cfg = ProposalsConfig(tmp_path / "mask", tmp_path / "p.json")
    summary = make_proposals([tmp_path / "scans"], cfg)
    details = {r.name: r.detail for r in summary.failed}
    assert "scene0000_00.mask.npz: the masks have 5 columns" in details["scene0000_00"]
    assert "scene0001_00.mask.npz: not a scipy sparse .npz" in details["scene0001_00"]
    with pytest.raises(ValueError, match="mask folder not found"):
        ProposalsConfig(tmp_path / "nowhere", tmp_path / "p.json")
