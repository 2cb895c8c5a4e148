"""build-shards: round trip, determinism, resume after an interruption, bad frames."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from ross3d_data.datasets import load_scene
from ross3d_data.instructions import ConvertConfig, convert_instructions, read_jsonl
from ross3d_data.scannet.posed import read_depth
from ross3d_data.shards import build as shards_mod
from ross3d_data.shards.build import ShardConfig, build_shards, read_manifest, read_tar
from ross3d_data.shards.sample import SampleConfig, decode_clip, prepare_clip
from ross3d_data.synthetic.annotations import write_demo_annotations
from ross3d_data.views.selection import select_uniform

VIEWS = 8


@pytest.fixture(scope="module")
def instructions(demo_scenes, tmp_path_factory) -> Path:
    """ScanQA train/val instructions for the demo scenes (official files -> jsonl)."""
    root = tmp_path_factory.mktemp("ann")
    files = write_demo_annotations(demo_scenes, root)
    out = root / "scanqa.jsonl"
    insts = []
    for split in ("train", "val"):
        cfg = ConvertConfig(
            task="scanqa",
            input=files[f"scanqa_{split}"],
            split=split,
            out=root / f"scanqa_{split}.jsonl",
            boxes_json=files["boxes"],
        )
        insts += convert_instructions(cfg).instructions
    out.write_text("".join(json.dumps(i.to_dict()) + "\n" for i in insts))
    return out


def _cfg(demo_scenes, out, instructions=(), **kw) -> ShardConfig:
    return ShardConfig(
        scenes=tuple(demo_scenes),
        out=out,
        instructions=tuple(instructions),
        sample=SampleConfig(views=VIEWS),
        max_shard_bytes=300_000,
        **kw,
    )


@pytest.fixture(scope="module")
def built(demo_scenes, instructions, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    return out, build_shards(_cfg(demo_scenes, out, [instructions]))


def _shard_bytes(out: Path) -> dict[str, bytes]:
    names = sorted(p.name for p in out.glob("shard-*.tar")) + sorted(
        p.name for p in out.glob("instructions-*.jsonl")
    )
    return {n: (out / n).read_bytes() for n in names}


def test_layout_manifest_and_indexes(built, demo_scenes, instructions):
    out, summary = built
    ids = sorted(Path(d).name for d in demo_scenes)
    assert summary.samples == len(ids) and summary.failed == {}
    manifest = read_manifest(out)
    keys = [k for s in manifest["shards"] for k in s["keys"]]
    assert keys == ids  # sorted, each once
    assert len(manifest["shards"]) == len(ids)  # 300 kB limit: one ~400 kB clip per shard
    for s in manifest["shards"]:
        names = [n for n, _ in read_tar(out / s["name"])]
        assert len(names) == len(set(names)) and all(n.split(".")[0] in s["keys"] for n in names)
    everything = read_jsonl(instructions)
    for split in ("train", "val"):
        index = read_jsonl(out / f"instructions-{split}.jsonl")
        expected = sorted((i for i in everything if i.split == split), key=lambda i: i.id)
        assert index == expected and summary.instructions[split] == len(expected)
    assert summary.vision_only == 0


def test_round_trip_equals_prepared_clip(built, demo_scenes):
    out, _ = built
    scene_dir = sorted(demo_scenes)[0]
    clip = prepare_clip(scene_dir, SampleConfig(views=VIEWS), None)
    members = read_tar(out / "shard-000000.tar")
    sample = {n.split(".", 1)[1]: d for n, d in members}
    back = decode_clip(sample)
    assert back.scene_id == clip.scene_id and back.labels == clip.labels
    for name, arr in clip.arrays.items():
        assert back.arrays[name].dtype == arr.dtype and np.array_equal(back.arrays[name], arr), name
    assert back.depth_mm_VSS.dtype == np.uint16
    assert np.array_equal(back.depth_mm_VSS, clip.depth_mm_VSS)
    assert np.array_equal(back.bev_HW3, clip.bev_HW3)
    # JPEG: lossy but close
    diff = np.abs(back.images_VSS3.astype(int) - clip.images_VSS3.astype(int))
    assert back.images_VSS3.shape == (VIEWS, 384, 384, 3) and diff.mean() < 2.0
    scene = load_scene(scene_dir)
    assert back.arrays["frame_ids"].tolist() == select_uniform(scene.frame_ids(), VIEWS)
    assert back.arrays["object_ids"].tolist() == sorted(o.object_id for o in scene.objects)


def test_rebuild_with_workers_is_byte_identical(built, demo_scenes, instructions, tmp_path):
    out, _ = built
    build_shards(_cfg(demo_scenes, tmp_path / "b", [instructions], workers=2))
    assert _shard_bytes(tmp_path / "b") == _shard_bytes(out)
    with pytest.raises(FileExistsError, match="already built"):
        build_shards(_cfg(demo_scenes, tmp_path / "b", [instructions]))


def test_interrupted_build_resumes_to_same_bytes(
    built, demo_scenes, instructions, tmp_path, monkeypatch
):
    out, _ = built
    real = shards_mod._prepare_job
    calls = []

    def dying(payload):
        if calls:
            raise KeyboardInterrupt  # the process is killed while preparing the 2nd scene
        calls.append(payload)
        return real(payload)

    monkeypatch.setattr(shards_mod, "_prepare_job", dying)
    with pytest.raises(KeyboardInterrupt):
        build_shards(_cfg(demo_scenes, tmp_path / "c", [instructions]))
    assert not (tmp_path / "c" / "manifest.json").exists()
    # what a kill -9 in the middle of writes leaves behind: half-written temp files
    (cache,) = (tmp_path / "c" / ".cache").iterdir()
    second = sorted(Path(d).name for d in demo_scenes)[1]
    (cache / f"{second}.tar.tmp").write_bytes(b"half a tar")
    (tmp_path / "c" / "shard-000000.tar.tmp").write_bytes(b"half a shard")
    monkeypatch.setattr(shards_mod, "_prepare_job", real)
    summary = build_shards(_cfg(demo_scenes, tmp_path / "c", [instructions]))
    assert summary.reused == 1 and summary.samples == len(demo_scenes)
    assert _shard_bytes(tmp_path / "c") == _shard_bytes(out)
    assert not list((tmp_path / "c").rglob("*.tmp"))
    assert not (tmp_path / "c" / ".cache").exists()


def test_bad_frames_are_skipped_and_counted(demo_scenes, tmp_path):
    src = sorted(demo_scenes)[0]
    scene_dir = tmp_path / "scenes" / src.name
    shutil.copytree(src, scene_dir, ignore=shutil.ignore_patterns("*.sens"))
    ids = load_scene(scene_dir).frame_ids()
    (scene_dir / "pose" / f"{ids[5]}.txt").write_text("-inf -inf -inf -inf\n" * 4)
    chosen = select_uniform(load_scene(scene_dir).frame_ids(), VIEWS)
    (scene_dir / "color" / f"{chosen[2]}.jpg").unlink()
    depth = read_depth(scene_dir / "depth" / f"{chosen[3]}.png")
    cv2.imwrite(str(scene_dir / "depth" / f"{chosen[3]}.png"), np.zeros_like(depth))
    summary = build_shards(
        ShardConfig(scenes=(scene_dir,), out=tmp_path / "out", sample=SampleConfig(views=VIEWS))
    )
    assert summary.skipped_frames == {"empty depth": 1, "invalid pose": 1, "unreadable frame": 1}
    members = dict(read_tar(tmp_path / "out" / "shard-000000.tar"))
    frame_ids = np.load(__import__("io").BytesIO(members[f"{src.name}.frame_ids.npy"]))
    assert len(frame_ids) == VIEWS
    assert not {ids[5], chosen[2], chosen[3]} & set(frame_ids.tolist())
    # each bad view replaced by its nearest good neighbour in frame order
    valid = load_scene(scene_dir).frame_ids()
    assert valid[valid.index(chosen[2]) - 1] in frame_ids
    assert valid[valid.index(chosen[3]) - 1] in frame_ids


def test_failed_scene_is_reported_then_retried(demo_scenes, tmp_path):
    good = tmp_path / "scenes" / "demo0000_00"
    shutil.copytree(sorted(demo_scenes)[0], good, ignore=shutil.ignore_patterns("*.sens"))
    broken = tmp_path / "scenes" / "broken0000_00"
    shutil.copytree(good, broken)
    for p in (broken / "pose").iterdir():
        p.write_text("-inf -inf -inf -inf\n" * 4)
    cfg = ShardConfig(scenes=(tmp_path / "scenes",), out=tmp_path / "out",
                      sample=SampleConfig(views=2))  # fmt: skip
    summary = build_shards(cfg)
    assert list(summary.failed) == ["broken0000_00"] and summary.samples == 1
    assert read_manifest(tmp_path / "out")["shards"][0]["keys"] == ["demo0000_00"]
    shutil.rmtree(broken / "pose")
    shutil.copytree(good / "pose", broken / "pose")  # fixed: the rerun resumes, no overwrite
    summary = build_shards(cfg)
    assert summary.failed == {} and summary.reused == 1 and summary.samples == 2
    assert not (tmp_path / "out" / ".cache").exists()  # complete: cache freed


def test_build_shards_cli(demo_scenes, tmp_path):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    root = Path(demo_scenes[0]).parent
    args = ["build-shards", str(root), "--out", str(tmp_path / "s"), "--views", "2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    manifest = read_manifest(tmp_path / "s")
    assert manifest["sample"]["views"] == 2 and len(manifest["shards"]) == 1
    assert "vision-only clips" in res.output
    res = CliRunner().invoke(app, args)  # a finished folder: a no-op that says so
    assert res.exit_code == 0 and "already built: 1 shards, nothing to do" in res.output


def test_real_tum_sample_builds_a_vision_only_clip(real_data, tmp_path):
    from ross3d_data.shards.loader import iter_examples

    summary = build_shards(ShardConfig(scenes=(real_data,), out=tmp_path / "s",
                                       sample=SampleConfig(views=4)))  # fmt: skip
    assert summary.samples == 1 and summary.vision_only == 1 and not summary.failed
    scene = summary.jobs.results[0].name
    (ex,) = list(iter_examples(tmp_path / "s", split="train", vision_only_scenes=[scene]))
    assert ex["instruction"] is None and tuple(ex["boxes"].shape) == (0, 6)
    assert ex["overlap"].diagonal().tolist() == [1.0] * 4
    # consecutive views of a slow hand-held sweep overlap a lot; most token cells have depth
    assert float(ex["coverage"].min()) > 0.2 and float(ex["coords_valid"].float().mean()) > 0.8


def test_bev_is_read_from_bev_dir_when_there(demo_scenes, tmp_path):
    from ross3d_data.bev.grid import BevResult
    from ross3d_data.bev.render import write_bev

    scene_dir = sorted(demo_scenes)[0]
    image = np.zeros((432, 432, 3), np.uint8)
    image[10:20, 30:40] = (200, 100, 50)
    w2p = np.array([[50.0, 0.0, 216.0], [0.0, -50.0, 216.0], [0.0, 0.0, 1.0]])
    write_bev(
        BevResult(image, w2p, 0.02, 0.0, 2.0, "test", "mesh"), scene_dir.name, tmp_path / "bev"
    )
    build_shards(ShardConfig(scenes=(scene_dir,), out=tmp_path / "s", bev_dir=tmp_path / "bev",
                             sample=SampleConfig(views=2)))  # fmt: skip
    sample = {n.split(".", 1)[1]: d for n, d in read_tar(tmp_path / "s" / "shard-000000.tar")}
    clip = decode_clip(sample)
    assert np.array_equal(clip.bev_HW3, image)
    assert np.array_equal(clip.arrays["bev_world_to_pixel"], w2p.astype(np.float32))


def test_frames_exported_apart_from_the_scans(demo_scenes, tmp_path):
    src = sorted(demo_scenes)[0]
    scan = tmp_path / "scans" / src.name
    shutil.copytree(src, scan, ignore=shutil.ignore_patterns(
        "*.sens", "color", "depth", "pose", "intrinsic", "export.json"))  # fmt: skip
    for sub in ("color", "depth", "pose", "intrinsic"):
        shutil.copytree(src / sub, tmp_path / "frames" / src.name / sub)
    without = build_shards(ShardConfig(scenes=(scan,), out=tmp_path / "a",
                                       sample=SampleConfig(views=2)))  # fmt: skip
    assert list(without.failed) == [src.name]  # a mesh but no frames
    summary = build_shards(ShardConfig(scenes=(scan,), out=tmp_path / "b",
                                       frames_dir=tmp_path / "frames",
                                       sample=SampleConfig(views=2)))  # fmt: skip
    assert summary.samples == 1 and not summary.failed


def test_more_views_than_frames_repeat_frames_with_a_warning(tmp_path):
    """32 views from a scene of 7 usable frames: 25 views repeat a frame; the job row, the
    summary table, a warning and the manifest say so."""
    from ross3d_data.cli import app
    from ross3d_data.synthetic.scenes import make_demo
    from typer.testing import CliRunner

    (scene_dir,) = make_demo(tmp_path / "demo", n_scenes=1, seed=0, n_frames=14)  # every 2nd
    assert len(load_scene(scene_dir).frame_ids()) == 7
    args = ["build-shards", str(scene_dir), "--out", str(tmp_path / "s"), "--views", "32"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    manifest = read_manifest(tmp_path / "s")
    assert manifest["summary"]["repeated_views"] == {"demo0000_00": 25}
    frame_ids = np.load(__import__("io").BytesIO(dict(read_tar(tmp_path / "s" / "shard-000000.tar"))
                        ["demo0000_00.frame_ids.npy"]))  # fmt: skip
    assert len(frame_ids) == 32 and len(set(frame_ids.tolist())) == 7
    assert "25 of 32 views repeat a frame" in res.stderr  # the scene's row
    assert "clips repeating frames" in res.stderr  # the summary table
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: 1 of 1 clips repeat frames: fewer usable frames than --views 32 "
        "(demo0000_00: 7 frames); pass a smaller --views, or export more frames "
        "(export-frames --every)"
    ]
    res = CliRunner().invoke(app, [*args[:-2], "--views", "7", "--overwrite"])
    assert res.exit_code == 0 and "warning" not in res.stderr
    assert read_manifest(tmp_path / "s")["summary"]["repeated_views"] == {}
