"""The colour resize width: "color" (the frame's own aspect) vs "depth" (the public rule,
video_utils.py ~314-317: int(W * 384 / H) with W x H the depth map's 640 x 480)."""

from __future__ import annotations

import numpy as np
import pytest
from ross3d_data.core.records import Intrinsics
from ross3d_data.shards.sample import SampleConfig
from ross3d_data.views.coords import prepare_view, resize_center_crop


def test_scannet_colour_widths():
    color = np.zeros((968, 1296, 3), np.uint8)
    _, sx, sy, left, top = resize_center_crop(color, 384)
    assert (round(sx * 1296), left, top) == (514, 65, 0)  # int(1296 * 384 / 968) = 514
    _, sx, sy, left, top = resize_center_crop(color, 384, aspect_wh=(640, 480))
    assert (sx, sy, left, top) == (512 / 1296, 384 / 968, 64, 0)  # int(640 * 384 / 480) = 512


def _edge(row: np.ndarray) -> float:
    """Where a dark-to-bright row crosses mid-grey, in continuous pixel coordinates (pixel j
    covers [j, j + 1]; linear between pixel centres)."""
    j = int(np.argmax(row >= 127.5))
    a, b = float(row[j - 1]), float(row[j])
    return j - 0.5 + (127.5 - a) / (b - a)


def test_prepare_view_follows_the_chosen_width():
    """A colour frame dark left of x = 324, bright from there: the edge lands at crop x
    324 * 512/1296 - 64 = 64.0 (depth aspect) or 324 * 514/1296 - 65 = 63.5 (colour aspect),
    and the crop intrinsics say the same."""
    color = np.zeros((968, 1296, 3), np.uint8)
    color[:, 324:] = 255
    depth = np.full((480, 640), 2000, np.uint16)
    K_c = Intrinsics(1170.0, 1170.0, 648.0, 484.0, 1296, 968)
    K_d = Intrinsics(577.9, 577.9, 320.0, 240.0, 640, 480)
    ours = prepare_view(color, depth, K_c, K_d, np.eye(4))
    public = prepare_view(color, depth, K_c, K_d, np.eye(4), resize_aspect="depth")
    for view, scale, left in ((ours, 514 / 1296, 65), (public, 512 / 1296, 64)):
        assert view.K_crop_33[0, 0] == pytest.approx(1170.0 * scale)
        assert view.K_crop_33[0, 2] == pytest.approx((648 + 0.5) * scale - 0.5 - left)  # centres
        assert _edge(view.image_SS3[100, :, 0]) == pytest.approx(324 * scale - left, abs=0.1)
    with pytest.raises(ValueError, match="resize_aspect"):
        SampleConfig(resize_aspect="colour")
