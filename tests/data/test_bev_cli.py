"""``ross3d-data render-bev`` on the demo scenes: files, known object colours, resume, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from ross3d_data.bev.grid import BevConfig
from ross3d_data.bev.render import render_bev_scenes
from ross3d_data.cli import app
from ross3d_data.synthetic.scenes import demo_layout
from typer.testing import CliRunner

runner = CliRunner()


def read_bev_files(folder: Path) -> tuple[np.ndarray, dict]:
    return np.asarray(Image.open(folder / "bev.png")), json.loads((folder / "bev.json").read_text())


def words(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())


def unwrapped(text: str) -> str:
    """CLI output with all whitespace removed: rich also breaks long paths inside a word."""
    return "".join(text.split())


def test_render_bev_cli_draws_demo_furniture_where_the_layout_puts_it(demo_scenes, tmp_path):
    out = tmp_path / "bev"
    result = runner.invoke(app, ["render-bev", str(demo_scenes[0].parent), "--out", str(out),
                                 "--size", "160"])  # fmt: skip
    assert result.exit_code == 0, result.output
    for index, scene_dir in enumerate(demo_scenes):
        image, meta = read_bev_files(out / scene_dir.name)
        assert image.shape == (160, 160, 3)
        assert (meta["scene_id"], meta["width"], meta["height"]) == (scene_dir.name, 160, 160)
        assert (meta["source"], meta["backend"]) == ("mesh", "jit")
        assert abs(meta["floor_z"]) < 0.02 and abs(meta["ceiling_z"] - 2.0) < 0.02
        M = np.array(meta["world_to_pixel"]).reshape(3, 3)
        # the demo mesh is stored mis-aligned: furniture only lands right if alignment is applied
        for obj in demo_layout(index):
            col, row, _ = M @ [obj.center_3[0], obj.center_3[1], 1.0]
            top = np.minimum(np.asarray(obj.color_3) * 1.15, 255)  # demo's top-face shading
            got = image[int(row), int(col)].astype(float)
            assert np.abs(got - top).max() < 25, (obj.label, got, top)
        # the 6 x 5 m room fills the width (plus 0.1 m margins) and is centred
        assert meta["meters_per_pixel"] * 160 > 6.0
        assert not image[:5].any() and not image[-5:].any()  # margin above/below the room


def test_render_bev_cli_skips_finished_scenes_unless_overwrite(demo_scenes, tmp_path):
    out = tmp_path / "bev"
    args = ["render-bev", str(demo_scenes[0]), "--out", str(out), "--size", "64"]
    assert runner.invoke(app, args).exit_code == 0
    png = out / demo_scenes[0].name / "bev.png"
    png.write_bytes(b"stale")  # a rerun must leave a finished scene alone ...
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert "already rendered: 1 scene, nothing to do" in words(again.output)
    assert png.read_bytes() == b"stale"
    redo = runner.invoke(app, [*args, "--overwrite"])  # ... unless told to overwrite
    assert redo.exit_code == 0 and "1 done" in words(redo.output)
    assert np.asarray(Image.open(png)).shape == (64, 64, 3)


def test_render_bev_cli_reports_a_broken_scene_and_renders_the_rest(demo_scenes, tmp_path):
    broken = tmp_path / "scene0999_00"
    broken.mkdir()
    (broken / "scene0999_00_vh_clean_2.ply").write_bytes(b"not a ply file")
    meta = (demo_scenes[0] / f"{demo_scenes[0].name}.txt").read_text()  # valid intrinsics
    (broken / "scene0999_00.txt").write_text(meta)
    out = tmp_path / "bev"
    result = runner.invoke(
        app, ["render-bev", str(demo_scenes[0]), str(broken), "--out", str(out), "--size", "32"]
    )
    assert result.exit_code == 1
    assert "1 done" in words(result.output) and "1 failed" in words(result.output)
    assert (out / demo_scenes[0].name / "bev.json").is_file()
    assert not (out / "scene0999_00" / "bev.json").exists()
    # the summary names the broken file (the table in the CLI output may fold long paths)
    summary = render_bev_scenes([broken], out, BevConfig(size_px=32))
    (failure,) = summary.failed
    assert failure.name == "scene0999_00" and "scene0999_00_vh_clean_2.ply" in failure.detail


def test_render_bev_cli_rejects_bad_options(demo_scenes, tmp_path):
    result = runner.invoke(app, ["render-bev", str(demo_scenes[0]), "--out", str(tmp_path),
                                 "--backend", "vulkan"])  # fmt: skip
    assert result.exit_code == 2 and "backend" in result.output


def test_mesh_and_alignment_alone_make_a_bev_and_a_file_as_out_is_a_clear_error(
    tiny_scene, tmp_path
):
    scene = tiny_scene()
    name = scene.path.name
    (scene.path / f"{name}.sens").unlink()  # no frames at all
    T = " ".join(f"{v:.9g}" for v in scene.T_aligned_world.ravel())
    (scene.path / f"{name}.txt").write_text(f"axisAlignment = {T}\nsceneType = Office\n")
    out = tmp_path / "bev"
    result = runner.invoke(app, ["render-bev", str(scene.path), "--out", str(out), "--size", "64"])
    assert result.exit_code == 0, result.output
    image, meta = read_bev_files(out / name)
    assert meta["source"] == "mesh" and image.shape == (64, 64, 3) and image.any()
    # the alignment was applied: the floor is the aligned mesh's lowest z (raw z + 0.5 m shift)
    aligned_z = scene.vertices_raw[:, 2] + scene.T_aligned_world[2, 3]
    assert abs(meta["floor_z"] - aligned_z.min()) < 0.02
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"x")
    result = runner.invoke(app, ["render-bev", str(scene.path), "--out", str(taken)])
    assert result.exit_code == 2 and not isinstance(result.exception, FileExistsError)
    expected = f"{taken}: the output must be a folder, but a file has that name"
    assert unwrapped(expected) in unwrapped(result.output)
