"""``ross3d-data inspect``: scenes and shard clips as Rerun recordings, read back with Rerun's
own reader (``rerun.chunk.RrdReader``), entity by entity."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from layouts.arkitscenes import SENSOR_K, write_arkit_video
from ross3d_data.cli import SCENE_FORMATS, app
from ross3d_data.datasets import FORMATS, find_scenes, load_scene
from ross3d_data.inspect import rerun_intrinsics, token_cell_colors
from ross3d_data.instructions import Instruction, write_jsonl
from ross3d_data.shards.build import ShardConfig, build_shards
from ross3d_data.shards.reader import ShardReader
from ross3d_data.shards.sample import SampleConfig
from ross3d_data.views.selection import choose_views
from typer.testing import CliRunner

pytest.importorskip("rerun")
runner = CliRunner()


def read_recording(path: Path) -> dict[str, dict[str, list]]:
    """``{entity path: {column: its one row}}`` of a recording's static data; a row is the
    list of the component's instances (one for a camera's pose, K for K boxes)."""
    from rerun.chunk import RrdReader

    out: dict[str, dict[str, list]] = defaultdict(dict)
    for chunk in RrdReader(path).stream():
        batch = chunk.to_record_batch()
        assert chunk.is_static and batch.num_rows == 1, (chunk.entity_path, batch.num_rows)
        for name in batch.schema.names:
            if ":" in name:
                out[chunk.entity_path][name] = batch.column(name).to_pylist()[0]
    return dict(out)


def rerun_verifies(path: Path) -> bool:
    """``rerun rrd verify`` (the viewer's own loader, from this venv) accepts the file."""
    rerun = Path(sys.executable).with_name("rerun")
    done = subprocess.run([str(rerun), "rrd", "verify", str(path)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    return done.returncode == 0 and "verified without error" in done.stdout + done.stderr


def views_of(rec: dict) -> list[str]:
    return sorted(p for p in rec if p.startswith("/world/views/") and p.count("/") == 3)


def test_a_scannet_scene_has_mesh_boxes_posed_views_trajectory_bev_and_tokens(
    demo_scenes, tmp_path
):
    scene = load_scene(demo_scenes[0])
    path = runner_inspect([str(demo_scenes[0]), "--out", str(tmp_path), "--views", "4"])
    assert path == tmp_path / f"{scene.scene_id}.rrd" and rerun_verifies(path)
    rec = read_recording(path)
    assert rec["/world"]["ViewCoordinates:xyz"] == [[3, 5, 1]]  # x right, y forward, z up
    mesh = scene.mesh_aligned()
    assert len(rec["/world/mesh"]["Mesh3D:vertex_positions"]) == len(mesh.vertices_N3)
    assert len(rec["/world/mesh"]["Mesh3D:triangle_indices"]) == len(mesh.faces_F3)
    np.testing.assert_array_equal(rec["/world/mesh"]["Mesh3D:vertex_colors"][:5],
                                  _rgba(mesh.colors_N3[:5]))  # fmt: skip
    boxes = rec["/world/boxes"]
    assert boxes["Boxes3D:labels"] == [f"{o.label} #{o.object_id}" for o in scene.objects]
    np.testing.assert_allclose(boxes["Boxes3D:centers"], [o.box_6[:3] for o in scene.objects],
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(boxes["Boxes3D:half_sizes"],
                               [o.box_6[3:] / 2 for o in scene.objects], atol=1e-6)  # fmt: skip
    chosen = choose_views(scene, 4, "uniform")
    assert views_of(rec) == [f"/world/views/{i:03d}" for i in range(4)]
    for i, fid in enumerate(chosen):
        cam = rec[f"/world/views/{i:03d}"]
        T = scene.T_aligned_cam(fid)
        np.testing.assert_allclose(cam["Transform3D:translation"][0], T[:3, 3], atol=1e-5)
        R = np.reshape(cam["Transform3D:mat3x3"][0], (3, 3)).T  # Rerun stores 3x3 column-major
        np.testing.assert_allclose(R, T[:3, :3], atol=1e-5)
        assert cam["Pinhole:resolution"] == [[384, 384]]
        assert cam["Pinhole:camera_xyz"] == [[3, 2, 5]]  # right, down, forward: OpenCV
        assert rec[f"/world/views/{i:03d}/rgb"]["Image:format"][0]["width"] == 384
        assert rec[f"/world/views/{i:03d}/depth"]["DepthImage:meter"] == [1000.0]
    strip = rec["/world/trajectory"]["LineStrips3D:strips"][0]
    assert len(strip) == len(scene.frame_ids())
    np.testing.assert_allclose(strip[0], scene.T_aligned_cam(scene.frame_ids()[0])[:3, 3],
                               atol=1e-5)  # fmt: skip
    assert rec["/bev"]["Image:format"][0]["width"] == 432  # BevConfig's default size
    assert rec["/bev/cameras"]["Points2D:labels"] == ["0", "1", "2", "3"]
    _tokens_lie_in_the_room(rec, mesh)
    assert f"{chosen}" in rec["/info"]["TextDocument:text"][0]


def runner_inspect(args: list[str]) -> Path:
    result = runner.invoke(app, ["inspect", *args])
    assert result.exit_code == 0, result.output
    (line,) = [w for w in result.stderr.splitlines() if w.startswith("wrote ")]
    return Path(line.removeprefix("wrote "))


def _rgba(colors_N3: np.ndarray) -> list[int]:
    """Rerun's packed 0xRRGGBBAA colours."""
    c = np.asarray(colors_N3, np.uint32)
    return list((c[:, 0] << 24) | (c[:, 1] << 16) | (c[:, 2] << 8) | 0xFF)


def _tokens_lie_in_the_room(rec: dict, mesh) -> None:
    """Token points are back-projected depth of the room: inside the mesh's bounds."""
    points = np.asarray(rec["/world/tokens"]["Points3D:positions"])
    assert 0 < len(points) <= 14 * 14
    lo, hi = mesh.vertices_N3.min(0) - 0.05, mesh.vertices_N3.max(0) + 0.05
    assert np.all((points >= lo) & (points <= hi))


def test_an_arkitscenes_video_is_inspected_through_the_same_registry(tmp_path):
    truth = write_arkit_video(tmp_path / "Validation")
    path = runner_inspect([str(truth.path), "--out", str(tmp_path / "rrd"), "--views", "3",
                           "--format", "arkitscenes"])  # fmt: skip
    rec = read_recording(path)
    scene = load_scene(truth.path)
    assert scene.dataset == "arkitscenes" and path.name == f"{scene.scene_id}.rrd"
    assert len(rec["/world/boxes"]["Boxes3D:labels"]) == len(truth.objects)
    assert len(rec["/world/mesh"]["Mesh3D:vertex_positions"]) == len(truth.mesh_world.vertices_N3)
    assert len(views_of(rec)) == 3
    for view in views_of(rec):
        assert rec[f"{view}/rgb"]["Image:format"][0]["height"] == 384
        assert f"{view}/depth" in rec
    # one frame has no traj line: the trajectory joins the others
    assert len(rec["/world/trajectory"]["LineStrips3D:strips"][0]) == len(truth.T_world_cam)
    assert "arkitscenes" in rec["/info"]["TextDocument:text"][0]
    assert SENSOR_K.width == 256  # the stored frames are 256x192 sensor images, not crops


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    from mixed_roots import write_roots

    return write_roots(tmp_path_factory.mktemp("roots"), scannet_frames=8)


@pytest.mark.parametrize("fmt", ["scannetpp", "3rscan", "multiscan"])
def test_every_other_format_gives_mesh_posed_views_trajectory_and_bev(roots, fmt, tmp_path):
    path = runner_inspect([str(roots[fmt]), "--out", str(tmp_path), "--views", "2"])
    (scene_dir,) = find_scenes(roots[fmt])
    scene = load_scene(scene_dir)
    assert path.name == f"{scene.scene_id}.rrd" and scene.dataset == fmt
    rec = read_recording(path)
    n_vertices = len(scene.mesh_aligned().vertices_N3)
    assert len(rec["/world/mesh"]["Mesh3D:vertex_positions"]) == n_vertices
    assert len(views_of(rec)) == 2
    for view in views_of(rec):
        assert {f"{view}/rgb", f"{view}/depth"} <= set(rec)
        assert rec[view]["Pinhole:resolution"] == [[384, 384]]
    assert len(rec["/world/trajectory"]["LineStrips3D:strips"][0]) == len(scene.frame_ids())
    assert "/bev" in rec and f"**dataset**: {fmt}" in rec["/info"]["TextDocument:text"][0]
    assert ("/world/boxes" in rec) == bool(scene.objects)


def test_a_shard_clip_shows_its_views_boxes_bev_and_instructions(demo_scenes, tmp_path):
    scene_id = load_scene(demo_scenes[0]).scene_id
    inst = Instruction(id="scanqa/val/q0", scene_id=scene_id, task="scanqa", split="val",
                       prompt="What is on the table?", answers=["a lamp"])  # fmt: skip
    write_jsonl([inst], tmp_path / "inst.jsonl")
    build_shards(ShardConfig(scenes=(demo_scenes[0],), out=tmp_path / "shards",
                             instructions=(tmp_path / "inst.jsonl",),
                             sample=SampleConfig(views=3)))  # fmt: skip
    path = runner_inspect(["--shards", str(tmp_path / "shards"), "--clip", scene_id,
                           "--out", str(tmp_path / "rrd")])  # fmt: skip
    assert path.name == f"{scene_id}.clip.rrd" and rerun_verifies(path)
    rec = read_recording(path)
    clip = ShardReader(tmp_path / "shards").clip(scene_id)
    assert "/world/mesh" not in rec  # a clip stores no mesh
    assert len(views_of(rec)) == 3
    for i in range(3):
        cam = rec[f"/world/views/{i:03d}"]
        T = clip.arrays["T_aligned_cam"][i]
        np.testing.assert_allclose(cam["Transform3D:translation"][0], T[:3, 3], atol=1e-6)
        K = np.reshape(cam["Pinhole:image_from_camera"][0], (3, 3)).T
        np.testing.assert_allclose(K, rerun_intrinsics(clip.arrays["K_crop"][i]), atol=1e-4)
        assert f"/world/views/{i:03d}/rgb" in rec
    assert rec["/world/boxes"]["Boxes3D:labels"] == [
        f"{label} #{oid}" for label, oid in zip(clip.labels, clip.arrays["object_ids"], strict=True)
    ]
    assert rec["/bev"]["Image:format"][0]["width"] == clip.bev_HW3.shape[1]
    (text,) = rec["/instructions"]["TextDocument:text"]
    assert "What is on the table?" in text and "a lamp" in text and "val / scanqa" in text
    assert "masked views**: none" in rec["/info"]["TextDocument:text"][0]
    valid = clip.arrays["coords_valid"][0]
    np.testing.assert_allclose(rec["/world/tokens"]["Points3D:positions"],
                               clip.arrays["coords"][0][valid], atol=1e-6)  # fmt: skip


def test_rerun_intrinsics_move_the_principal_point_half_a_pixel():
    # ours: pixel (0, 0)'s centre is at 0; Rerun's: at 0.5 (corner at 0)
    K = np.array([[100.0, 0, 191.5], [0, 100.0, 191.5], [0, 0, 1]])
    np.testing.assert_array_equal(rerun_intrinsics(K)[:2, 2], [192.0, 192.0])
    np.testing.assert_array_equal(K[:2, 2], [191.5, 191.5])  # input untouched


def test_token_cell_colours_average_each_cell():
    image = np.zeros((384, 384, 3), np.uint8)
    image[:27, :27] = 90  # cell (0, 0)
    image[27:54, :27, 0] = 200  # cell (1, 0), red only
    image[380:, :] = 255  # beyond the 378 covered pixels: ignored
    colors = token_cell_colors(image, 14)
    assert colors.shape == (14, 14, 3)
    np.testing.assert_array_equal(colors[0, 0], [90, 90, 90])
    np.testing.assert_array_equal(colors[1, 0], [200, 0, 0])
    assert colors[13].max() == 0


def test_bad_invocations_are_one_line_errors(demo_scenes, tmp_path):
    for args in (["--out", str(tmp_path)],
                 [str(demo_scenes[0]), "--shards", str(tmp_path), "--out", str(tmp_path)]):  # fmt: skip
        result = runner.invoke(app, ["inspect", *args])
        assert result.exit_code == 2 and "not both or neither" in result.stderr
    result = runner.invoke(app, ["inspect", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "no scene folders found" in result.stderr
    result = runner.invoke(app, ["inspect", str(demo_scenes[0]), "--out", str(tmp_path),
                                 "--format", "nope"])  # fmt: skip
    assert result.exit_code == 2 and "scannet" in result.output
    assert tuple(FORMATS) == SCENE_FORMATS
