"""The preview picture and the ``ross3d-data preview`` command."""

import json

import numpy as np
import pytest
from PIL import Image
from ross3d_data.cli import app
from ross3d_data.core.errors import SceneError
from ross3d_data.preview import PreviewConfig, write_preview
from typer.testing import CliRunner

SMALL = {"width_px": 900, "height_px": 320, "dpi": 50}


def test_preview_png_has_the_configured_size(tiny_scene, tmp_path):
    scene = tiny_scene(n_frames=5, invalid=(2,))
    out = tmp_path / "p.png"
    data = write_preview(scene.path, out, PreviewConfig(views=3, **SMALL))
    assert Image.open(out).size == (900, 320)
    assert data.frame_ids == [0, 1, 4]  # linspace over the valid frames [0, 1, 3, 4]
    assert data.overlap_VV.shape == (3, 3) and np.all(np.diag(data.overlap_VV) == 1.0)
    assert data.views[0].image_SS3.shape == (384, 384, 3)
    assert data.bev_HW3 is not None and not data.notes


def test_preview_reads_bev_dir(tiny_scene, tmp_path):
    scene = tiny_scene()
    folder = tmp_path / "bev" / scene.path.name
    folder.mkdir(parents=True)
    marker = np.zeros((40, 40, 3), np.uint8)
    marker[..., 1] = 200
    Image.fromarray(marker).save(folder / "bev.png")
    w2p = [[10.0, 0.0, 20.0], [0.0, -10.0, 20.0], [0.0, 0.0, 1.0]]
    (folder / "bev.json").write_text(json.dumps({"world_to_pixel": w2p}))
    cfg = PreviewConfig(views=2, bev_dir=tmp_path / "bev", **SMALL)
    data = write_preview(scene.path, tmp_path / "p.png", cfg)
    np.testing.assert_array_equal(data.bev_HW3, marker)
    np.testing.assert_allclose(data.bev_world_to_pixel_33, w2p)


def test_preview_without_bev_draws_a_blank_canvas(tiny_scene, tmp_path, monkeypatch):
    import ross3d_data.bev.files

    def no_bev(scene, bev_dir):
        raise SceneError(scene.root, "nothing to render")

    monkeypatch.setattr(ross3d_data.bev.files, "load_or_render_bev", no_bev)
    out = tmp_path / "p.png"
    data = write_preview(tiny_scene().path, out, PreviewConfig(views=2, **SMALL))
    assert data.bev_HW3 is None and "nothing to render" in data.notes[0]
    assert Image.open(out).size == (900, 320)


def test_preview_config_is_validated():
    with pytest.raises(ValueError, match="method"):
        PreviewConfig(method="random")
    with pytest.raises(ValueError, match="views"):
        PreviewConfig(views=0)


def test_cli_preview(tiny_scene, tmp_path):
    scene = tiny_scene()
    out = tmp_path / "cli.png"
    result = CliRunner().invoke(
        app, ["preview", str(scene.path), "--out", str(out), "--views", "2"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (2000, 720)
    bad = CliRunner().invoke(app, ["preview", str(tmp_path / "nope"), "--out", str(out)])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_preview_of_the_real_tum_sample(real_data, tmp_path):
    out = tmp_path / "tum.png"
    data = write_preview(real_data, out, PreviewConfig(views=6, method="max-coverage", **SMALL))
    assert Image.open(out).size == (900, 320)
    assert len(set(data.frame_ids)) == 6 and data.frame_ids == sorted(data.frame_ids)
    # a hand-held orbit around the teddy: every view shares part of itself with another one
    assert (data.coverage_V > 0.2).all()
