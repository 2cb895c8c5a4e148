"""Grounding: patches inside a box from depth (known geometry), object features, InfoNCE, selection."""

import math

import torch
from model_examples import DEPTH_MM, FOCAL, S, V
from ross3d_model.config import GroundingConfig
from ross3d_model.grounding import (
    GroundingHead,
    infonce_loss,
    object_features,
    patches_in_boxes,
    select_multi,
    select_single,
)


def _scene():
    depth = torch.full((V, S, S), DEPTH_MM, dtype=torch.int32)
    K = torch.tensor([[FOCAL, 0, S / 2], [0, FOCAL, S / 2], [0, 0, 1]]).repeat(V, 1, 1)
    T = torch.eye(4).repeat(V, 1, 1)
    T[:, 0, 3] = torch.tensor([0.0, 0.5, 1.0, 1.5])
    return depth, K, T


def test_patches_in_box_by_hand():
    depth, K, T = _scene()
    # wall at z = 2 m, f = 300, c = 192: pixel u sees x = cam_x + (u - 192) / 150.
    # box centre (0, 0, 2), size 0.61: view 0 pixels 147..237 inside on both axes.
    # patch p covers pixels 14p..14p+13: p = 10 has 147..153 = 7/14 per axis, p = 11..16 all,
    # p = 17 none. Fractions multiply: edge patches (10, 11..16) 50 % (kept), corner (10, 10)
    # 25 % (dropped). View 1 (cam x 0.5): u in 72..162 -> col 5 has 12/14, col 11 9/14, so
    # with row 10 (7/14) they give 43 % and 32 % (dropped); with full rows 11..16 kept.
    box = torch.tensor([[0.0, 0.0, 2.0, 0.61, 0.61, 0.4]])
    got = patches_in_boxes(depth, K, T, box, grid=27, patch_px=14, min_inside_fraction=0.5)
    assert got.shape == (1, V, 27, 27)
    expected0 = torch.zeros(27, 27, dtype=torch.bool)
    expected0[10:17, 10:17] = True
    expected0[10, 10] = False
    assert torch.equal(got[0, 0], expected0)
    expected1 = torch.zeros(27, 27, dtype=torch.bool)
    expected1[10:17, 5:12] = True
    expected1[10, 5] = expected1[10, 11] = False
    assert torch.equal(got[0, 1], expected1)


def test_invalid_depth_never_counts():
    depth, K, T = _scene()
    depth[:] = 0
    box = torch.tensor([[0.0, 0.0, 0.0, 100.0, 100.0, 100.0]])
    assert not patches_in_boxes(depth, K, T, box, 27, 14, 0.5).any()


def test_object_features_mean_plus_centre_pe():
    feats = torch.arange(2 * 2 * 2 * 3, dtype=torch.float32).view(2, 2, 2, 3)
    in_box = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    in_box[0, 0, 0, 1] = in_box[0, 1, 1, 0] = True  # patches (v0,0,1)=[3,4,5], (v1,1,0)=[18,19,20]
    pe = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    got = object_features(feats, in_box, pe)
    assert torch.allclose(got[0], torch.tensor([11.5, 11.5, 12.5]))
    assert torch.allclose(got[1], torch.tensor([0.0, 0.0, 2.0]))  # no patch: PE only


def test_infonce_by_hand():
    logits = torch.tensor([1.0, 2.0, 3.0, 0.0])  # last = zero-target
    total = math.log(sum(math.exp(x) for x in (1, 2, 3, 0)))
    assert math.isclose(float(infonce_loss(logits, [1])), total - 2.0, rel_tol=1e-6)
    both = math.log(math.exp(1) + math.exp(3))
    assert math.isclose(float(infonce_loss(logits, [0, 2])), total - both, rel_tol=1e-6)
    assert math.isclose(float(infonce_loss(logits, [])), total - 0.0, rel_tol=1e-6)


def test_head_scores_are_cosine_over_temperature():
    head = GroundingHead(8, GroundingConfig(temperature=0.07))
    scores = head(torch.randn(8), torch.randn(5, 8))
    assert scores.shape == (6,)
    assert scores.abs().max() <= 1 / 0.07 + 1e-4


def test_select_single_ignores_zero_target():
    assert select_single(torch.tensor([0.1, 2.0, 0.3, 9.0])) == 1


def test_select_multi_cumulative_threshold():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])  # candidates 0..2, zero-target last
    logits = probs.log()
    assert select_multi(logits, 0.5) == [0]
    assert select_multi(logits, 0.7) == [0, 1]
    assert select_multi(logits, 0.9) == [0, 1, 2]
    zero_first = torch.tensor([0.1, 0.2, 0.1, 0.6]).log()
    assert select_multi(zero_first, 0.5) == []
    # the zero-target picked later is skipped, not returned
    assert select_multi(torch.tensor([0.4, 0.1, 0.2, 0.3]).log(), 0.95) == [0, 2, 1]
