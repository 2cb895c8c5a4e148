"""Every per-scene command on every format (issue 17): dataset roots found through their
published container folders, ``--format`` forcing one layout, and one shard folder built from
several roots at once (ScanNet with text, the others vision-only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from layouts.arkitscenes import EMPTY_VID, VID, write_video_without_assets
from mixed_roots import MULTISCAN_ID, RSCAN_ID, SCANNET_IDS, SCANNETPP_ID, VISION_KEYS, write_roots
from ross3d_data.cli import SCENE_FORMATS, app
from ross3d_data.core.errors import SceneError
from ross3d_data.datasets import FORMATS, find_scenes, load_scene
from ross3d_data.datasets.meshes import read_mesh
from ross3d_data.shards.build import read_manifest, read_tar
from ross3d_data.shards.loader import iter_examples
from ross3d_data.synthetic.raycast import import_open3d
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict:
    return write_roots(tmp_path_factory.mktemp("roots"))


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_cli_format_choices_are_the_registry_names():
    assert tuple(FORMATS) == SCENE_FORMATS


def test_find_scenes_descends_each_published_root(roots):
    assert find_scenes(roots["scannet"]) == [roots["scannet"] / "scans" / s for s in SCANNET_IDS]
    arkit = roots["arkitscenes"] / "3dod" / "Training" / VID
    assert find_scenes(roots["arkitscenes"]) == [arkit] == find_scenes(arkit.parent.parent)
    assert find_scenes(roots["scannetpp"]) == [roots["scannetpp"] / "data" / SCANNETPP_ID]
    assert find_scenes(roots["3rscan"]) == [roots["3rscan"] / RSCAN_ID]
    assert find_scenes(roots["multiscan"]) == [roots["multiscan"] / MULTISCAN_ID]
    for name in FORMATS:  # forcing the right format finds the same folders
        assert find_scenes(roots[name], name) == find_scenes(roots[name])


def test_arkitscenes_root_lists_both_splits(tmp_path):
    for split in ("Training", "Validation"):
        write_video_without_assets(tmp_path / "3dod" / split)
    (tmp_path / "3dod" / "metadata").mkdir()  # not a container, not a scene
    expected = [tmp_path / "3dod" / s / EMPTY_VID for s in ("Training", "Validation")]
    assert find_scenes(tmp_path) == expected == find_scenes(tmp_path, "arkitscenes")


def test_a_forced_format_that_does_not_match_names_what_it_looked_for(roots):
    with pytest.raises(SceneError) as err:
        find_scenes(roots["arkitscenes"], "scannetpp")
    msg = str(err.value)
    assert "\n" not in msg and str(roots["arkitscenes"]) in msg
    assert "ScanNet++" in msg and "data/" in msg and "ARKitScenes" not in msg
    with pytest.raises(SceneError, match=r"3RScan: <scan_id>/mesh\.refined\.v2\.obj"):
        load_scene(roots["multiscan"] / MULTISCAN_ID, fmt="3rscan")
    with pytest.raises(ValueError, match="unknown scene format 'nope'"):
        find_scenes(roots["scannet"], "nope")


def test_a_folder_of_no_layout_names_every_layout_and_container(tmp_path):
    (tmp_path / "scans" / "not-a-scene").mkdir(parents=True)
    with pytest.raises(SceneError) as err:
        find_scenes(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    for words in ("ScanNet:", "ARKitScenes 3dod", "ScanNet++", "3RScan", "MultiScan", "3dod/"):
        assert words in msg


def test_render_bev_on_the_arkitscenes_download_root(roots, tmp_path):
    out = tmp_path / "bev"
    result = _run("render-bev", roots["arkitscenes"], "--out", out, "--size", "64")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / VISION_KEYS["arkitscenes"] / "bev.json").read_text())
    assert meta["source"] == "mesh" and (out / VISION_KEYS["arkitscenes"] / "bev.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == [VISION_KEYS["arkitscenes"]]


def test_render_bev_with_the_wrong_format_is_one_error_line(roots, tmp_path):
    result = _run("render-bev", roots["arkitscenes"], "--out", tmp_path, "--format", "multiscan")
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert line.startswith("error:") and "MultiScan" in line
    result = _run("render-bev", roots["arkitscenes"], "--out", tmp_path, "--format", "nope")
    assert result.exit_code == 2 and "nope" in result.output


def test_export_frames_refuses_other_formats(roots, tmp_path):
    result = _run("export-frames", roots["arkitscenes"], "--out", tmp_path, "--format",
                  "arkitscenes")  # fmt: skip
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert "ScanNet" in line and "arkitscenes" in line
    assert not any(tmp_path.iterdir())


def test_export_frames_on_the_scannet_root(roots, tmp_path):
    result = _run("export-frames", roots["scannet"], "--out", tmp_path, "--every", "8",
                  "--format", "scannet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == list(SCANNET_IDS)
    for scene in SCANNET_IDS:  # raw frames 0, 8, 16 of 24 (none of them has a -inf pose)
        names = sorted(p.stem for p in (tmp_path / scene / "pose").iterdir())
        assert names == ["0", "16", "8"], names


def _distance_to_mesh_m(mesh, points_N3: np.ndarray) -> np.ndarray:
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices_N3.astype(np.float32)),
        o3d.core.Tensor(mesh.faces_F3.astype(np.uint32)),
    )
    return scene.compute_distance(o3d.core.Tensor(points_N3.astype(np.float32))).numpy()


def test_export_mesh_fused_points_lie_on_the_arkitscenes_mesh(roots, tmp_path):
    video = roots["arkitscenes"] / "3dod" / "Training" / VID
    fused, mesh = tmp_path / "fused.ply", tmp_path / "mesh.ply"
    for source, out in (("fused", fused), ("mesh", mesh)):
        result = _run("export-mesh", video, "--out", out, "--source", source,
                      "--format", "arkitscenes")  # fmt: skip
        assert result.exit_code == 0, result.output
    points = read_mesh(fused).vertices_N3
    assert len(points) > 1000
    assert float(np.median(_distance_to_mesh_m(read_mesh(mesh), points))) <= 0.01


def test_preview_with_a_forced_format(roots, tmp_path):
    scene = roots["scannetpp"] / "data" / SCANNETPP_ID
    out = tmp_path / "preview.png"
    result = _run("preview", scene, "--out", out, "--views", "3", "--format", "scannetpp")
    assert result.exit_code == 0, result.output
    assert out.is_file() and VISION_KEYS["scannetpp"] in " ".join(result.output.split())
    result = _run("preview", scene, "--out", out, "--format", "scannet")
    assert result.exit_code == 2 and "not a scene folder" in _one_line(result.output)


def test_build_shards_takes_every_root_at_once(roots, tmp_path):
    out = tmp_path / "shards"
    args = [roots[name] for name in FORMATS]
    result = _run("build-shards", *args, "--out", out, "--views", "4",
                  "--instructions", roots["instructions"])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    keys = [k for s in manifest["shards"] for k in s["keys"]]
    assert sorted(keys) == sorted([*SCANNET_IDS, *VISION_KEYS.values()])
    assert all("." not in k for k in keys)
    members = [n for s in manifest["shards"] for n, _ in read_tar(out / s["name"])]
    assert {n.split(".", 1)[0] for n in members} == set(keys)
    # text for the ScanNet scenes only; every other format's clip is vision-only
    assert sorted(manifest["scene_splits"]) == sorted(SCANNET_IDS)
    assert manifest["summary"]["vision_only"] == len(VISION_KEYS)
    assert manifest["summary"]["failed"] == {}
    examples = list(
        iter_examples(out, split="train", vision_only_scenes=list(VISION_KEYS.values()))
    )
    vision = {ex["scene_id"]: ex for ex in examples if ex["instruction"] is None}
    assert sorted(vision) == sorted(VISION_KEYS.values())
    for ex in vision.values():
        assert tuple(ex["images"].shape[:1]) == (4,)
        assert float(ex["coords_valid"].float().mean()) > 0.5
    texts = {ex["scene_id"] for ex in examples if ex["instruction"] is not None}
    assert texts == set(SCANNET_IDS)


def test_frames_dir_is_a_scannet_option_the_other_formats_read_their_own_frames(roots, tmp_path):
    # a mixed build passes --frames-dir for every root: only ScanNet scans use it

    bogus = tmp_path / "posed"  # no posed folder here: a ScanNet scene would fail on it
    bogus.mkdir()
    for name in ("arkitscenes", "scannetpp", "3rscan", "multiscan"):
        (scene_dir,) = find_scenes(roots[name])
        scene = load_scene(scene_dir, frames_dir=bogus)
        assert scene.dataset == name and scene.scene_id == VISION_KEYS[name]
        assert scene.frame_ids()
    with pytest.raises(SceneError, match="no posed-image folder"):
        load_scene(find_scenes(roots["scannet"])[0], frames_dir=bogus)
