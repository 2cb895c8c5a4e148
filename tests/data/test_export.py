import json

import numpy as np
import pytest
from rich.console import Console
from ross3d_data.core.errors import SceneError
from ross3d_data.datasets import load_scene
from ross3d_data.datasets.frames import export_frames
from ross3d_data.scannet import export as export_mod
from ross3d_data.scannet.export import MANIFEST, ExportConfig, is_exported
from ross3d_data.scannet.sens import iter_sens


@pytest.fixture(autouse=True)
def _quiet_jobs(monkeypatch):
    """Keep the progress bar out of the test log."""
    import ross3d_data.core.jobs as jobs

    monkeypatch.setattr(jobs, "Console", lambda **kw: Console(file=open("/dev/null", "w")))  # noqa: SIM115


def test_demo_export_every_10_skips_inf_pose_and_copies_jpeg(demo_scenes, tmp_path):
    s = export_frames([demo_scenes[0].parent], ExportConfig(out=tmp_path, every=10))
    assert [r.status for r in s.results] == ["done", "done"]
    out = tmp_path / demo_scenes[0].name
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["frames"] == 7 and manifest["skipped_invalid_pose"] == [20]
    assert sorted(int(p.stem) for p in (out / "color").glob("*.jpg")) == [0, 10, 30, 40, 50, 60, 70]
    rec = next(
        r for r in iter_sens(demo_scenes[0] / f"{demo_scenes[0].name}.sens", 10) if r.frame_id == 30
    )
    assert (out / "color" / "30.jpg").read_bytes() == rec.color_bytes  # no re-encoding
    src = load_scene(demo_scenes[0])  # its own posed folder (every 2nd frame)
    exp = load_scene(demo_scenes[0], frames_dir=tmp_path)
    assert exp.frame_ids() == [0, 10, 30, 40, 50, 60, 70]
    a, b = src.load_frame(30), exp.load_frame(30)
    np.testing.assert_array_equal(a.depth_mm_HW, b.depth_mm_HW)
    np.testing.assert_array_equal(a.color_HW3, b.color_HW3)
    np.testing.assert_allclose(exp.T_aligned_cam(30), src.T_aligned_cam(30))
    assert exp.depth_intrinsics == src.depth_intrinsics
    assert [o.object_id for o in exp.objects] == [o.object_id for o in src.objects]


def test_resume_skips_done_and_overwrite_redoes(tiny_scene, tmp_path):
    root = tmp_path / "scans"
    for name in ("scene0000_00", "scene0001_00"):
        tiny_scene(name=name, root=root)
    out = tmp_path / "out"
    cfg = ExportConfig(out=out, every=1)
    assert [r.status for r in export_frames([root], cfg).results] == ["done", "done"]
    assert [r.status for r in export_frames([root], cfg).results] == ["skipped", "skipped"]
    marker = out / "scene0000_00" / "color" / "stale.txt"
    marker.write_text("from the first run")
    cfg = ExportConfig(out=out, every=1, overwrite=True)
    assert [r.status for r in export_frames([root], cfg).results] == ["done", "done"]
    assert not marker.exists()  # the scene folder was replaced, not merged


def test_killed_export_is_not_taken_as_done(tiny_scene, tmp_path, monkeypatch):
    tiny = tiny_scene(root=tmp_path / "scans")
    out = tmp_path / "out"

    def crash(*args):
        raise KeyboardInterrupt  # a kill in the middle of writing frames

    monkeypatch.setattr(export_mod, "_write_record", crash)
    with pytest.raises(KeyboardInterrupt):
        export_frames([tiny.path], ExportConfig(out=out, every=1))
    monkeypatch.undo()
    assert not (out / "scene0000_00").exists() and (out / ".scene0000_00.partial").exists()
    assert not is_exported(out / "scene0000_00")
    s = export_frames([tiny.path], ExportConfig(out=out, every=1))
    assert (
        s.results[0].status == "done"
        and s.results[0].detail == "4 frames, 1 skipped (invalid pose)"
    )
    assert not (out / ".scene0000_00.partial").exists()
    assert load_scene(tiny.path, frames_dir=out).frame_ids() == [0, 1, 3, 4]


def test_bad_scene_is_reported_and_others_finish(tiny_scene, tmp_path):
    root = tmp_path / "scans"
    tiny_scene(name="scene0000_00", root=root)
    bad = tiny_scene(name="scene0001_00", root=root)
    tiny_scene(name="scene0002_00", root=root)
    sens = bad.path / "scene0001_00.sens"
    sens.write_bytes(sens.read_bytes()[:-500])
    s = export_frames([root], ExportConfig(out=tmp_path / "out", every=1, workers=2))
    assert [r.status for r in s.results] == ["done", "failed", "done"]
    assert "scene0001_00.sens: truncated in frame 4 of 5" in s.results[1].detail
    assert s.exit_code == 1
    assert not (tmp_path / "out" / "scene0001_00").exists()


def test_duplicate_scene_ids_are_refused(tiny_scene, tmp_path):
    a = tiny_scene(root=tmp_path / "a").path
    b = tiny_scene(root=tmp_path / "b").path
    with pytest.raises(SceneError, match="scene id also found at"):
        export_frames([a, b], ExportConfig(out=tmp_path / "out"))


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="every must be >= 1"):
        ExportConfig(out=tmp_path, every=0)


def test_a_corrupt_colour_or_depth_frame_is_skipped_and_counted_and_the_scene_kept(
    tiny_scene, tmp_path
):
    scene = tiny_scene(n_frames=5, invalid=(2,))
    sens_file = scene.path / f"{scene.path.name}.sens"
    recs = {r.frame_id: r for r in iter_sens(sens_file)}
    data = bytearray(sens_file.read_bytes())
    start = recs[1].offset + 96  # frame head: 16 pose floats + 4 uint64
    data[start : start + len(recs[1].color_bytes)] = bytes(len(recs[1].color_bytes))  # JPEG
    start = recs[3].offset + 96 + len(recs[3].color_bytes)
    data[start : start + len(recs[3].depth_bytes)] = bytes(len(recs[3].depth_bytes))  # zlib
    sens_file.write_bytes(bytes(data))
    summary = export_frames([scene.path], ExportConfig(out=tmp_path / "out", every=1))
    (result,) = summary.results
    assert result.status == "done" and summary.exit_code == 0
    assert result.detail == (
        "2 frames, 1 skipped (invalid pose), 2 skipped (corrupt image: frames 1, 3)"
    )
    out = tmp_path / "out" / scene.path.name
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["skipped_corrupt"] == [1, 3] and manifest["skipped_invalid_pose"] == [2]
    for sub, ext in (("color", "jpg"), ("depth", "png"), ("pose", "txt")):
        assert sorted(int(p.stem) for p in (out / sub).glob(f"*.{ext}")) == [0, 4]
    assert load_scene(scene.path, frames_dir=tmp_path / "out").frame_ids() == [0, 4]


def test_an_existing_file_as_out_is_a_clear_error(tiny_scene, tmp_path):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    scene = tiny_scene()
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    res = CliRunner().invoke(app, ["export-frames", str(scene.path), "--out", str(taken)])
    assert res.exit_code == 2 and not isinstance(res.exception, (ValueError, FileExistsError))
    assert "the output must be a folder, but a file has that name" in " ".join(res.output.split())
