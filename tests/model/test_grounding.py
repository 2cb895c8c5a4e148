"""Grounding: patches inside a box from depth (known geometry), object features, InfoNCE, selection.

The patch masks are the rule of ross3d_data.cache.patch_masks (the model has no copy of it)."""

import math

import numpy as np
import torch
from model_examples import DEPTH_MM, FOCAL, S, V
from ross3d_data.cache.patch_masks import patches_in_boxes
from ross3d_model.configuration.model import GroundingConfig
from ross3d_model.modeling.grounding import (
    GroundingHead,
    infonce_loss,
    object_features,
    select_multi,
    select_single,
)


def _scene():
    depth = np.full((V, S, S), DEPTH_MM, dtype=np.uint16)
    K = np.tile(np.array([[FOCAL, 0, S / 2], [0, FOCAL, S / 2], [0, 0, 1]], np.float32), (V, 1, 1))
    T = np.tile(np.eye(4, dtype=np.float32), (V, 1, 1))
    T[:, 0, 3] = [0.0, 0.5, 1.0, 1.5]
    return depth, K, T


def test_patches_in_box_by_hand():
    depth, K, T = _scene()
    # wall at z = 2 m, f = 300, c = 192: pixel u sees x = cam_x + (u - 192) / 150.
    # box centre (0, 0, 2), size 0.61: view 0 pixels 147..237 inside on both axes.
    # patch p covers pixels 14p..14p+13: p = 10 has 147..153 = 7/14 per axis, p = 11..16 all,
    # p = 17 none. Fractions multiply: edge patches (10, 11..16) 50 % (kept), corner (10, 10)
    # 25 % (dropped). View 1 (cam x 0.5): u in 72..162 -> col 5 has 12/14, col 11 9/14, so
    # with row 10 (7/14) they give 43 % and 32 % (dropped); with full rows 11..16 kept.
    box = np.array([[0.0, 0.0, 2.0, 0.61, 0.61, 0.4]], np.float32)
    got = patches_in_boxes(depth, K, T, box, grid=27, patch_px=14, min_inside_fraction=0.5)
    assert got.shape == (1, V, 27, 27)
    expected0 = np.zeros((27, 27), dtype=bool)
    expected0[10:17, 10:17] = True
    expected0[10, 10] = False
    np.testing.assert_array_equal(got[0, 0], expected0)
    expected1 = np.zeros((27, 27), dtype=bool)
    expected1[10:17, 5:12] = True
    expected1[10, 5] = expected1[10, 11] = False
    np.testing.assert_array_equal(got[0, 1], expected1)


def test_invalid_depth_never_counts_with_patch_depth_valid():
    depth, K, T = _scene()
    depth[:] = 0
    box = np.array([[0.0, 0.0, 0.0, 100.0, 100.0, 100.0]], np.float32)
    assert not patches_in_boxes(depth, K, T, box, 27, 14, 0.5, patch_depth="valid").any()


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


def test_patch_depth_any_counts_invalid_pixels_at_the_camera_centre():
    """Public code (ross3d_arch.py ~536-554) tests every pixel's unprojected point; with no valid
    depth every point is the camera centre: inside a box around it, outside one away from it."""
    depth, K, T = _scene()
    depth[:] = 0
    around = np.array([[0.5, 0.0, 0.0, 0.2, 0.2, 0.2]], np.float32)  # camera 1 (0.5, 0, 0) only
    got = patches_in_boxes(depth, K, T, around, 27, 14, 0.5, patch_depth="any")
    assert got[0, 1].all() and not got[0, [0, 2, 3]].any()
    assert not patches_in_boxes(depth, K, T, around, 27, 14, 0.5, patch_depth="valid").any()


def test_head_init_switch():
    """reference: Qwen2 `_init_weights` (Linear N(0, 0.02), bias 0) and zero-target randn
    (ross3d_qwen.py ~103); torch: PyTorch Linear default (std 1/sqrt(3 fan_in)), zero-target
    N(0, 0.02^2)."""
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    ref = GroundingHead(256, GroundingConfig(head_init="reference"))
    for layer in (ref.obj[0], ref.obj[3], ref.query[0], ref.query[3]):
        assert abs(float(layer.weight.std()) - 0.02) < 0.001 and not layer.bias.any()
    assert abs(float(ref.zero_target.std()) - 1.0) < 0.15
    ours = GroundingHead(256, GroundingConfig(head_init="torch"))
    assert abs(float(ours.obj[0].weight.std()) - 1 / math.sqrt(3 * 256)) < 0.002
    assert ours.obj[0].bias.abs().max() > 0
    assert abs(float(ours.zero_target.std()) - 0.02) < 0.005
    torch.set_grad_enabled(True)


def _probs(*p):
    return torch.tensor(p).log()  # softmax(log p) = p for p summing to 1


def test_select_multi_is_the_public_rule():
    """eval_multi3drefer.py ~100-111 on hand-made cases (last entry = zero-target)."""
    probs = _probs(0.5, 0.3, 0.15, 0.05)
    assert select_multi(probs, 0.4) == [0]
    assert select_multi(probs, 0.7) == [0, 1]  # 0.5 + 0.3 >= 0.7
    assert select_multi(probs, 0.9) == [0, 1, 2]
    assert select_multi(probs, 0.99) == [0, 1, 2]  # never reaches it: every candidate
    assert select_multi(_probs(0.1, 0.2, 0.1, 0.6), 0.4) == []  # zero-target wins the argmax
    # zero-target second: dropped without renormalising, candidates still accumulate
    assert select_multi(_probs(0.35, 0.1, 0.25, 0.3), 0.4) == [0, 2]
    assert select_multi(_probs(0.35, 0.1, 0.25, 0.3), 0.7) == [0, 2, 1]
    # a tie with the zero-target: argmax is the first maximum, a candidate
    assert select_multi(torch.tensor([2.0, 2.0]), 0.4) == [0]
