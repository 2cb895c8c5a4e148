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


def test_camera_centre_fill_by_hand():
    """2x2 cells of 2x2 px: cell shares of valid depth 1, 1/2, 0, 1/4; the public code averages
    every pixel, an invalid one at the camera centre (1, 2, 3)."""
    from ross3d_model.modeling.position import camera_centre_fill

    depth = torch.zeros(1, 4, 4, dtype=torch.int32)
    depth[0, 0:2, 0:2] = 1000  # cell (0, 0): all valid
    depth[0, 0, 2:4] = 1000  # cell (0, 1): 2 of 4
    depth[0, 2, 2] = 1000  # cell (1, 1): 1 of 4; cell (1, 0): none
    T = torch.eye(4)[None].clone()
    T[0, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    a, b, d = (
        torch.tensor([5.0, 5.0, 5.0]),
        torch.tensor([7.0, 9.0, 11.0]),
        torch.tensor([3.0, 2.0, 1.0]),
    )
    coords = torch.stack([torch.stack([a, b]), torch.stack([torch.zeros(3), d])])[None]
    got = camera_centre_fill(coords, depth, T, crop=4)[0]
    c = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(got[0, 0], a)
    assert torch.allclose(got[0, 1], 0.5 * b + 0.5 * c)
    assert torch.allclose(got[1, 0], c)
    assert torch.allclose(got[1, 1], 0.25 * d + 0.75 * c)


def test_camera_centre_fill_equals_the_public_all_pixel_average():
    """ross3d_data's valid-pixel cell means + the fill == Ross3D's `unproject` (video_utils.py
    ~39-69: z = depth / 1000, invalid depth -> the camera centre) averaged over 27x27-px cells of
    the top-left 378 px (`average_coordinate_in_patch`, ross3d_arch.py ~341-351)."""
    import numpy as np
    from ross3d_data.views.coords import token_coordinates
    from ross3d_model.modeling.grounding import pixel_xyz_aligned
    from ross3d_model.modeling.position import camera_centre_fill

    g = torch.Generator().manual_seed(0)
    depth = torch.randint(500, 4000, (1, 384, 384), generator=g, dtype=torch.int32)
    depth[torch.rand(1, 384, 384, generator=g) < 0.3] = 0
    depth[0, :27, :27] = 0  # one cell with no valid pixel
    K = torch.tensor([[[300.0, 0.0, 190.0], [0.0, 310.0, 195.0], [0.0, 0.0, 1.0]]])
    T = torch.eye(4)[None].clone()
    T[0, :3, :3] = torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]).T
    T[0, :3, 3] = torch.tensor([1.5, -2.0, 1.2])
    public = pixel_xyz_aligned(depth, K, T)[:, :378, :378].reshape(1, 14, 27, 14, 27, 3)
    public = public.double().mean(dim=(2, 4)).float()
    ours, _ = token_coordinates(depth[0].numpy().astype(np.uint16), K[0].numpy(), T[0].numpy())
    got = camera_centre_fill(torch.from_numpy(ours)[None], depth, T, crop=378)
    assert torch.allclose(got, public, atol=1e-4)
