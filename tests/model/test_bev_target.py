"""vae.bev_resize: "crop-4:3" reproduces the public BEV resize-then-centre-crop
(video_utils.py ~327-343: PIL resize to int(640 * 432 / 480) = 576 x 432, columns 72..503);
"square" leaves the shard's image to the VAE input resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from ross3d_model.configuration.parts import VaeConfig
from ross3d_model.modeling.latents import bev_target


def _stripes() -> torch.Tensor:
    """A 432x432 BEV: red in source columns 0..39 (inside the left eighth, 0..53, that the crop
    drops), black up to column 107, white from 108."""
    image = np.zeros((432, 432, 3), np.uint8)
    image[:, :40, 0] = 255
    image[:, 108:] = 255
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def test_crop_4_3_stretches_and_drops_the_side_eighths():
    out = bev_target(_stripes(), 432, "crop-4:3")
    assert out.shape == (1, 3, 432, 432) and out.dtype == torch.uint8
    row = out[0, :, 200].numpy().astype(int)  # [3, 432] one row
    # output pixel j (centre j + 0.5) reads source x = 0.75 * (j + 0.5) + 54: no red survives
    assert (row[0, :60] == row[1, :60]).all() and row[0, :60].max() <= 3
    # ... and the black/white edge at source x = 108 lands between columns 71 and 72
    assert row[:, :69].max() <= 3 and row[:, 75:].min() >= 252
    assert row[0, 70] < 128 < row[0, 73]


def test_crop_4_3_is_the_public_pil_rule_exactly():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)  # any released size
    public = Image.fromarray(image).resize((576, 432)).crop((72, 0, 504, 432))  # PIL default
    out = bev_target(torch.from_numpy(image).permute(2, 0, 1)[None], 432, "crop-4:3")
    np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), np.asarray(public))


def test_square_is_unchanged_and_the_choice_is_checked():
    bev = _stripes()
    assert bev_target(bev, 432, "square") is bev
    assert VaeConfig().bev_resize == "square"
    with pytest.raises(ValueError, match="bev_resize"):
        VaeConfig(bev_resize="crop")
