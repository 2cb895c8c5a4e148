import json

from ross3d_data.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def _text(result) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    assert "make-demo" in r.output and "export-frames" in r.output


def test_make_demo_writes_a_loadable_scene(tmp_path):
    from ross3d_data.datasets import load_scene

    args = ["make-demo", "--out", str(tmp_path), "--num-scenes", "2", "--seed", "3",
            "--num-frames", "5"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    scene = load_scene(tmp_path / "demo0001_00")
    assert scene.frame_ids() == [0, 2, 4] and len(scene.objects) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "annotations",
        "demo0000_00",
        "demo0001_00",
    ]
    boxes = json.loads((tmp_path / "annotations" / "boxes.json").read_text())
    assert sorted(boxes) == ["demo0000_00", "demo0001_00"] and len(boxes["demo0001_00"]) == 7
    assert (tmp_path / "annotations" / "scanqa").is_dir()
    r = runner.invoke(
        app, ["make-demo", "--out", str(tmp_path), "--num-scenes", "1", "--num-frames", "3"]
    )
    assert r.exit_code == 0, r.output
    assert load_scene(tmp_path / "demo0000_00").frame_ids() == [0, 2]  # no stale frame 4


def test_export_frames_exit_codes(tiny_scene, tmp_path):
    root = tmp_path / "scans"
    tiny_scene(name="scene0000_00", root=root)
    bad = tiny_scene(name="scene0001_00", root=root)
    out = tmp_path / "out"
    r = runner.invoke(
        app, ["export-frames", str(root / "scene0000_00"), "--out", str(out), "--every", "2"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "scene0000_00" / "export.json").read_text())["frames"] == 2  # 0, 4
    (bad.path / "scene0001_00.sens").write_bytes(b"\x04\x00\x00\x00garbage")
    r = runner.invoke(app, ["export-frames", str(root), "--out", str(out), "--every", "2"])
    assert r.exit_code == 1
    out_text = _text(r)
    assert "0 done, 1 skipped (already complete), 1 failed" in out_text
    assert "scene0001_00" in out_text and "truncated" in out_text
    r = runner.invoke(app, ["export-frames", str(root / "scene0000_00"), "--out", str(out),
                            "--every", "2"])  # fmt: skip
    assert r.exit_code == 0
    last = r.stderr.splitlines()[-1]
    assert last == "already exported: 1 scene, nothing to do (pass --overwrite to redo)"
    r = runner.invoke(app, ["export-frames", str(tmp_path / "missing"), "--out", str(out)])
    assert r.exit_code == 2 and "missing: not a directory" in _text(r)
    (line,) = r.stderr.splitlines()  # one line, on stderr, no traceback
    assert r.stdout == "" and line.startswith("error: ") and line.endswith("not a directory")
