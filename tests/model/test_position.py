"""3D sine encoding against hand-computed values."""

import math

import torch
from ross3d_model.configuration.model import PositionConfig
from ross3d_model.modeling.position import discretize_xyz, encode_xyz, sine_encoding

CFG = PositionConfig()


def test_discretize_clamps_and_quantises_at_10cm():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [0.04, 0.06, -0.26], [20.0, -20.0, 9.0]])
    got = discretize_xyz(xyz, CFG)
    expected = torch.tensor([[150.0, 150.0, 50.0], [150.0, 151.0, 47.0], [300.0, 0.0, 100.0]])
    assert torch.equal(got, expected)


def test_encoding_matches_the_formula_by_hand():
    # dim 14 -> 4 features per axis, frequencies T^(2*floor(i/2)/4) = 1, 1, 100, 100; 2 zeros pad
    enc = encode_xyz(torch.tensor([[0.0, 1.0, -5.0]]), 14, CFG)[0]
    x, y, z = 150.0, 160.0, 0.0
    expected = [
        math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100),
        math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100),
        math.sin(z), math.cos(z), math.sin(z / 100), math.cos(z / 100),
        0.0, 0.0,
    ]  # fmt: skip
    assert torch.allclose(enc, torch.tensor(expected), atol=1e-5)


def test_odd_feature_count_ends_with_a_sine():
    # dim 15 -> 5 per axis: sin, cos, sin, cos, sin with frequencies 1, 1, T^0.4, T^0.4, T^0.8
    enc = sine_encoding(torch.tensor([[7.0, 0.0, 0.0]]), 15, 10000.0)[0]
    f1, f2 = 10000.0**0.4, 10000.0**0.8
    expected = [math.sin(7), math.cos(7), math.sin(7 / f1), math.cos(7 / f1), math.sin(7 / f2)]
    assert torch.allclose(enc[:5], torch.tensor(expected), atol=1e-6)
    assert torch.allclose(enc[5:10], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]))


def test_invalid_cells_get_no_encoding():
    xyz = torch.ones(2, 3)
    enc = encode_xyz(xyz, 12, CFG, valid_N=torch.tensor([True, False]))
    assert enc[0].abs().sum() > 0 and torch.equal(enc[1], torch.zeros(12))
