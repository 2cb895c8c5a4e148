"""--bev-dir reads Ross3D's released BEV layout (<scene>/view_0.jpg) beside our bev.png."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from ross3d_data.bev.files import load_or_render_bev
from ross3d_data.core.errors import SceneError


def _released(root, scene_id: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    (root / scene_id).mkdir(parents=True)
    Image.fromarray(image).save(root / scene_id / "view_0.jpg", quality=95)
    with Image.open(root / scene_id / "view_0.jpg") as img:  # the public decode
        return np.asarray(img.convert("RGB"))


def test_released_view_0_is_read_as_the_public_code_decodes_it(tmp_path):
    expected = _released(tmp_path, "scene0011_00")
    image, w2p = load_or_render_bev(SimpleNamespace(scene_id="scene0011_00"), tmp_path)
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)  # its own size, not resized
    np.testing.assert_array_equal(image, expected)
    assert w2p.shape == (3, 3) and np.isnan(w2p).all()  # no rendering parameters released


def test_our_render_wins_and_a_broken_release_names_the_file(tmp_path):
    import json

    _released(tmp_path, "scene0011_00")
    ours = np.zeros((8, 8, 3), np.uint8)
    ours[2:4, 2:4] = 200
    Image.fromarray(ours).save(tmp_path / "scene0011_00" / "bev.png")
    (tmp_path / "scene0011_00" / "bev.json").write_text(
        json.dumps({"world_to_pixel": np.eye(3).tolist()})
    )
    image, w2p = load_or_render_bev(SimpleNamespace(scene_id="scene0011_00"), tmp_path)
    np.testing.assert_array_equal(image, ours)
    np.testing.assert_array_equal(w2p, np.eye(3))
    (tmp_path / "scene0012_00").mkdir()
    (tmp_path / "scene0012_00" / "view_0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SceneError, match=r"scene0012_00/view_0\.jpg: unreadable released BEV"):
        load_or_render_bev(SimpleNamespace(scene_id="scene0012_00"), tmp_path)
