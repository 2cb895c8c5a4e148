"""One definition per rule (issue 16): the model's collate applies ross3d_data's numpy rules.

Grounding patch masks (`ross3d_data.cache.patch_masks.patches_in_boxes`), pixel-to-xyz
(`ross3d_data.core.geometry.backproject_pixels`) and token coordinates
(`ross3d_data.views.coords`: `token_coordinates`, `camera_centre_fill`) are defined once, in the
data package; the model calls them in `inputs.batch.collate_examples` on the CPU. The known-answer
cases below go through the collate (the model's entry point), on a scene whose pixel positions
are exact in float32: every view looks down +z at a wall 2 m away with f = 128 px and
c = (192, 192), so pixel (u, v) is at (cam_x + (u - 192) / 64, (v - 192) / 64, 2) exactly.
Patch (r, c) covers pixels 14r..14r+13 (rows) x 14c..14c+13 (columns).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from model_examples import instruction, make_example
from ross3d_model.inputs.batch import collate_examples

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
RULES = (
    "patches_in_boxes",
    "pixel_xyz_aligned",
    "backproject_pixels",
    "backproject_depth",
    "token_coordinates",
    "camera_centre_fill",
)
DIM = 1.0 / 64  # metres per pixel on the wall


def _cfg(cfg, section: str, **values):
    data = cfg.to_dict()
    data[section] = {**data[section], **values}
    return type(cfg).from_dict(data)


def _x(u: float) -> float:
    return (u - 192) * DIM


def _box(u0: int, u1: int, v0: int, v1: int, z: float = 2.0, dz: float = 0.5) -> list[float]:
    """Axis-aligned box whose faces pass exactly through pixels u0, u1 (x) and v0, v1 (y)."""
    return [(_x(u0) + _x(u1)) / 2, (_x(v0) + _x(v1)) / 2, z, _x(u1) - _x(u0), _x(v1) - _x(v0), dz]


def _wall_example(boxes: list[list[float]], depth_VSS: np.ndarray | None = None) -> dict:
    ex = dict(make_example(instruction("scanrefer", object_ids=[0]), seed=3))
    v = ex["K_crop"].shape[0]
    K = torch.tensor([[128.0, 0, 192], [0, 128.0, 192], [0, 0, 1]]).repeat(v, 1, 1)
    depth = np.full((v, 384, 384), 2000, np.uint16) if depth_VSS is None else depth_VSS
    ex.update(
        K_crop=K,
        T_aligned_cam=torch.eye(4).repeat(v, 1, 1),
        depth_mm=torch.from_numpy(depth),
        boxes=torch.tensor(boxes, dtype=torch.float32),
        object_ids=torch.arange(len(boxes)),
    )
    return ex


def _in_box(ex: dict, cfg, tok) -> torch.Tensor:
    return collate_examples([ex], tok, cfg)["grounding"][0]["in_box"]


def _only(*patches: tuple[int, int]) -> torch.Tensor:
    want = torch.zeros(27, 27, dtype=torch.bool)
    for r, c in patches:
        want[r, c] = True
    return want


def test_the_model_defines_none_of_the_data_rules():
    """No function of ross3d_model re-implements a rule; ross3d_data defines each once."""
    found = {}
    for package in ("ross3d-model", "ross3d-data"):
        for path in sorted((PACKAGES / package / "src").rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and node.name in RULES:
                    found.setdefault(node.name, []).append(path.relative_to(PACKAGES).as_posix())
    assert not [f for paths in found.values() for f in paths if f.startswith("ross3d-model")]
    assert {name: len(paths) for name, paths in found.items()} == {
        "patches_in_boxes": 1,
        "backproject_pixels": 1,
        "backproject_depth": 1,
        "token_coordinates": 1,
        "camera_centre_fill": 1,
    }


def test_boxes_with_faces_on_patch_borders(tiny_cfg, tiny_tokenizer):
    """Faces included: a box whose faces pass through a patch's first and last pixel rows and
    columns holds all of that patch; one pixel less on a side leaves 13/14 of it (kept at 50 %)."""
    exact = _box(140, 153, 140, 167)  # patch column 10, rows 10 and 11, to the pixel
    short = _box(141, 153, 140, 153)  # columns 141..153: 13/14 of patch (10, 10)
    got = _in_box(_wall_example([exact, short]), tiny_cfg, tiny_tokenizer)
    assert got.shape == (2, 4, 27, 27)
    for v in range(4):
        assert torch.equal(got[0, v], _only((10, 10), (11, 10)))
        assert torch.equal(got[1, v], _only((10, 10)))
    strict = _cfg(tiny_cfg, "grounding", min_inside_fraction=1.0)
    got = _in_box(_wall_example([exact, short]), strict, tiny_tokenizer)
    assert torch.equal(got[0, 0], _only((10, 10), (11, 10))) and not got[1].any()


def test_exactly_half_a_patch_is_in(tiny_cfg, tiny_tokenizer):
    """7 of 14 columns x 14 rows = 98/196 = 50 %: kept at min_inside_fraction 0.5; 6 columns
    (84/196) are not; a box across two patches with 7 columns each keeps both."""
    half = _box(147, 153, 140, 153)
    less = _box(148, 153, 140, 153)
    across = _box(147, 160, 140, 153)  # columns 147..153 of patch 10 and 154..160 of patch 11
    got = _in_box(_wall_example([half, less, across]), tiny_cfg, tiny_tokenizer)
    assert torch.equal(got[0, 0], _only((10, 10)))
    assert not got[1].any()
    assert torch.equal(got[2, 0], _only((10, 10), (10, 11)))


def test_empty_boxes_select_no_patch(tiny_cfg, tiny_tokenizer):
    """A zero-size box on a pixel holds 1/196 of a patch; a box off the wall holds nothing."""
    point = _box(160, 160, 160, 160, dz=0.0)
    away = [0.0, 0.0, 5.0, 1.0, 1.0, 1.0]
    got = _in_box(_wall_example([point, away]), tiny_cfg, tiny_tokenizer)
    assert not got.any()
    tiny = _cfg(tiny_cfg, "grounding", min_inside_fraction=1 / 196)
    got = _in_box(_wall_example([point, away]), tiny, tiny_tokenizer)
    assert torch.equal(got[0, 0], _only((11, 11))) and not got[1].any()


@pytest.mark.parametrize("rule", ["any", "valid"])
def test_depth_holes(tiny_cfg, tiny_tokenizer, rule):
    """Patch (12, 12) loses the depth of 98 pixels (its left 7 columns): a box on the wall around
    it keeps exactly 50 %; one more hole pixel (view 1) drops it. A box around the camera
    centre holds the hole pixels only with patch_depth "any" (the public code unprojects them
    there): patches (12, 12) (98 or 99 holes) and (12, 13) (112 holes)."""
    depth = np.full((4, 384, 384), 2000, np.uint16)
    depth[:, 168:182, 168:175] = 0  # patch (12, 12): 98 of 196 pixels without depth
    depth[:, 168:182, 182:190] = 0  # patch (12, 13): 112 of 196 without depth
    depth[1, 168, 175] = 0  # view 1: 99 holes in patch (12, 12)
    wall = _box(154, 195, 154, 195)  # patches 11..13 fully, rows and columns
    centre = [0.0, 0.0, 0.0, 0.2, 0.2, 0.2]
    cfg = _cfg(tiny_cfg, "grounding", patch_depth=rule)
    got = _in_box(_wall_example([wall, centre], depth), cfg, tiny_tokenizer)
    assert got[0, 0, 12, 12] and not got[0, 1, 12, 12]
    assert not got[0, 0, 12, 13]  # 84 of 196 left
    assert got[0, 0, 11, 11] and got[0, 0, 13, 13]
    for v in (0, 1):
        assert torch.equal(got[1, v], _only((12, 12), (12, 13)) if rule == "any" else _only())


def test_camera_centre_coords_by_hand(tiny_cfg, tiny_tokenizer):
    """position.invalid_depth "camera-centre": a cell without depth is the camera centre, a
    full cell keeps its coordinates, a cell a third without depth moves a third of the way
    to the camera; "zero" leaves the coordinates and marks the empty cell invalid."""
    ex = dict(make_example(None, seed=5))
    depth = np.full((4, 384, 384), 2000, np.uint16)
    depth[:, :27, :27] = 0  # cell (0, 0): no depth
    depth[:, :9, 27:54] = 0  # cell (0, 1): 243 of 729 pixels without depth
    T = torch.eye(4).repeat(4, 1, 1)
    T[:, :3, 3] = torch.tensor([1.0, -2.0, 0.5])
    coords = torch.full((4, 14, 14, 3), 3.0)
    ex.update(depth_mm=torch.from_numpy(depth), T_aligned_cam=T, coords=coords)
    batch = collate_examples([ex], tiny_tokenizer, tiny_cfg)
    got = batch["coords"][0]
    centre = torch.tensor([1.0, -2.0, 0.5])
    assert torch.equal(got[:, 0, 0], centre.expand(4, 3))
    assert torch.allclose(got[:, 0, 1], (2 * 3.0 + centre) / 3, atol=1e-5)
    assert torch.equal(got[:, 5, 5], coords[:, 5, 5]) and batch["coords_valid"].all()
    zero = _cfg(tiny_cfg, "position", invalid_depth="zero")
    ex["coords_valid"] = torch.ones(4, 14, 14, dtype=torch.bool)
    ex["coords_valid"][:, 0, 0] = False
    batch = collate_examples([ex], tiny_tokenizer, zero)
    assert torch.equal(batch["coords"][0], coords) and not batch["coords_valid"][0, :, 0, 0].any()
