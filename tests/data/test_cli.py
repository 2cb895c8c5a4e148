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


def test_build_shards_and_cache_clips_reruns_on_finished_output_are_no_ops(demo_scenes, tmp_path):
    out = tmp_path / "shards"
    args = ["build-shards", str(demo_scenes[0]), "--out", str(out), "--views", "4"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    manifest = (out / "manifest.json").read_bytes()
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        "already built: 1 shards, nothing to do (pass --overwrite to rebuild)"
    ]
    assert (out / "manifest.json").read_bytes() == manifest
    r = runner.invoke(app, ["cache-clips", str(out), "--grid", "4"])  # old positional SHARDS
    assert r.exit_code == 0, r.output
    assert "the positional SHARDS is deprecated; use --shards" in _text(r)
    masks = out / "clip-cache" / "patch_masks.h5"
    first = masks.stat().st_mtime_ns
    r = runner.invoke(app, ["cache-clips", "--shards", str(out), "--grid", "4"])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[-1] == (
        "already cached: 1 clips' patch masks, nothing to do (pass --overwrite to rebuild)"
    )
    assert masks.stat().st_mtime_ns == first
    r = runner.invoke(app, ["cache-clips", "--shards", str(out), "--grid", "5"])  # other params
    assert (
        r.exit_code == 0 and "nothing to do" not in r.output and masks.stat().st_mtime_ns != first
    )


def test_old_spellings_still_work_with_a_deprecation_note(tmp_path):
    r = runner.invoke(app, ["make-demo", str(tmp_path), "--n-scenes", "1", "--n-frames", "3"])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: the positional OUT is deprecated; use --out",
        "note: --n-scenes is deprecated; use --num-scenes",
        "note: --n-frames is deprecated; use --num-frames",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations", "demo0000_00"]
    val = tmp_path / "annotations" / "scanqa" / "ScanQA_v1.0_val.json"
    forms = {
        "old": (["--task", "scanqa", "--input", str(val)], ["--task", "--input"]),
        "short": (["--benchmark", "scanqa", "-i", str(val)], ["-i"]),
        "new": (["--benchmark", "scanqa", "--annotations", str(val)], []),
    }
    for name, (options, deprecated) in forms.items():
        args = ["convert-instructions", *options, "--split", "val", "--scenes", str(tmp_path)]
        r = runner.invoke(app, [*args, "--out", str(tmp_path / f"{name}.jsonl")])
        assert r.exit_code == 0, r.output
        said = [line.split()[1] for line in r.stderr.splitlines() if "is deprecated" in line]
        assert said == deprecated
    new = (tmp_path / "new.jsonl").read_text()
    assert (tmp_path / "old.jsonl").read_text() == (tmp_path / "short.jsonl").read_text() == new
    questions = json.loads(val.read_text())
    records = [json.loads(line) for line in new.splitlines()]
    assert len(records) == len(questions) and {r["task"] for r in records} == {"scanqa"}


def test_missing_required_option_is_one_line(tmp_path):
    r = runner.invoke(app, ["convert-instructions", "--split", "val", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["error: missing option --benchmark"]
