"""The ray engine: same units, same summary and the same shard bytes as the local engine,
with a worker killed mid-scene (retried) and a driver killed mid-build (resumed by a rerun).

One local Ray instance (2 CPUs) is shared by the module; it takes 10-16 s to start here, so the
Ray tests are few. This module's functions are pickled by value, so Ray workers (which cannot
import a test module) run them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console
from ross3d_data.bev.grid import BevConfig
from ross3d_data.bev.render import render_bev_scenes
from ross3d_data.cache.patch_masks import KIND, PatchMaskParams, cache_patch_masks
from ross3d_data.cache.store import cache_path
from ross3d_data.core.engines import EngineError, TaskResources
from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import run_scene_jobs
from ross3d_data.datasets.frames import export_frames
from ross3d_data.scannet.export import ExportConfig
from ross3d_data.shards import build as shards_mod
from ross3d_data.shards.build import ShardConfig, build_shards
from ross3d_data.shards.sample import SampleConfig

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # as engines.import_ray does
ray = pytest.importorskip("ray")

REAL_PREPARE = shards_mod._prepare_job
BROKEN = "broken0000_00"


def _quiet() -> Console:
    return Console(file=open(os.devnull, "w"))


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance for the module; yields its address for other drivers."""
    from ray import cloudpickle

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray.get_runtime_context().gcs_address
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture(scope="module")
def scenes(demo_scenes, tmp_path_factory) -> Path:
    """The two demo scenes plus a copy whose depth intrinsics do not parse (it must fail)."""
    root = tmp_path_factory.mktemp("scenes")
    for src in demo_scenes:
        shutil.copytree(src, root / src.name, ignore=shutil.ignore_patterns("*.sens"))
    broken = root / BROKEN
    shutil.copytree(demo_scenes[0], broken, ignore=shutil.ignore_patterns("*.sens"))
    (broken / "intrinsic" / "intrinsic_depth.txt").write_text("garbage\n")
    return root


def _cfg(scenes: Path, out: Path, **kw) -> ShardConfig:
    # 64 KiB: one clip per shard, so packing across shards is exercised too
    return ShardConfig(scenes=(scenes,), out=out, sample=SampleConfig(views=4),
                       max_shard_bytes=1 << 16, **kw)  # fmt: skip


def _output_bytes(out: Path) -> dict[str, bytes]:
    """Shards and manifest (no instruction files in these builds)."""
    files = [*sorted(out.glob("shard-*.tar")), out / "manifest.json"]
    return {p.name: p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def local_build(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    summary = build_shards(_cfg(scenes, out), _quiet())
    return out, summary


def _square_or_fail(payload: tuple[int, str]) -> str:
    """Logs every call to a file (one line per attempt); 3 fails like a bad scene file."""
    x, log = payload
    with open(log, "a") as f:
        f.write(f"{x}\n")
    if x == 3:
        raise SceneError(f"/data/scene{x}/scene{x}.sens", "truncated in frame 7 of 9")
    return f"squared {x * x}"


def test_ray_units_report_like_local_and_python_errors_are_not_retried(ray_address, tmp_path):
    summaries = {}
    for engine, workers in (("local", 1), ("ray", 2)):
        log = tmp_path / f"{engine}.log"
        items = [(f"scene{x}", (x, str(log))) for x in range(5)]
        summaries[engine] = run_scene_jobs(
            items, _square_or_fail, workers=workers, engine=engine, console=_quiet()
        )
        assert sorted(log.read_text().split()) == ["0", "1", "2", "3", "4"]  # once each
    local, remote = summaries["local"], summaries["ray"]
    assert [(r.name, r.status, r.detail) for r in remote.results] == [
        (r.name, r.status, r.detail) for r in local.results
    ]
    assert remote.results[3].detail == "/data/scene3/scene3.sens: truncated in frame 7 of 9"
    assert remote.results[4].detail == "squared 16" and remote.exit_code == 1


def test_ray_shards_are_byte_identical_and_a_bad_scene_is_reported(
    ray_address, scenes, local_build, tmp_path
):
    local_out, local = local_build
    assert list(local.failed) == [BROKEN] and local.samples == 2
    summary = build_shards(_cfg(scenes, tmp_path, engine="ray", workers=2), _quiet())
    assert summary.failed == local.failed  # same one-line reason, naming the file
    assert summary.failed[BROKEN].startswith(f"{scenes}/{BROKEN}/intrinsic/intrinsic_depth.txt: ")
    assert summary.samples == 2 and len(summary.shards) == 2
    assert _output_bytes(tmp_path) == _output_bytes(local_out)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_export_bev_and_patch_masks_are_the_same_on_ray(
    ray_address, demo_scenes, local_build, tmp_path
):
    root = demo_scenes[0].parent
    for engine, workers in (("local", 1), ("ray", 2)):
        out = tmp_path / engine
        cfg = ExportConfig(out=out / "posed", every=10, engine=engine, workers=workers)
        assert export_frames([root], cfg).exit_code == 0
        bev_cfg = BevConfig(size_px=64)
        bev = render_bev_scenes([root], out / "bev", bev_cfg, workers=workers, engine=engine)
        assert bev.exit_code == 0
        shutil.copytree(local_build[0], out / "shards", ignore=shutil.ignore_patterns(".cache"))
        cache_patch_masks(out / "shards", PatchMaskParams(), workers=workers, engine=engine)
    posed, bev = (_tree_bytes(tmp_path / "local" / d) for d in ("posed", "bev"))
    assert len([n for n in posed if n.endswith(".jpg")]) == 14  # 7 frames per scene
    assert sorted(bev) == [f"demo000{i}_00/bev.{x}" for i in (0, 1) for x in ("json", "png")]
    assert _tree_bytes(tmp_path / "ray" / "posed") == posed
    assert _tree_bytes(tmp_path / "ray" / "bev") == bev
    local, remote = (_h5_clips(cache_path(tmp_path / e / "shards", KIND)) for e in ("local", "ray"))
    assert sorted(local) == ["demo0000_00", "demo0001_00"] and remote == local


def _h5_clips(path: Path) -> dict:
    """clip key -> (fingerprint, {array name: bytes}) of a clip cache file."""
    import h5py

    with h5py.File(path, "r") as f:
        return {key: (g.attrs["fingerprint"], {n: g[n][()].tobytes() for n in g})
                for key, g in f["clips"].items()}  # fmt: skip


def test_build_shards_cli_on_ray(ray_address, scenes, local_build, tmp_path):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    out = tmp_path / "cli"
    args = ["build-shards", str(scenes), "--out", str(out), "--views", "4",
            "--max-shard-bytes", str(1 << 16), "--engine", "ray", "--workers", "2"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and BROKEN in res.output  # the bad scene is reported
    assert _output_bytes(out) == _output_bytes(local_build[0])


def test_a_task_no_node_can_hold_is_refused(ray_address):
    huge = TaskResources(cpus=1.0, memory_gib=1e6)
    with pytest.raises(EngineError, match="no Ray node can run a task needing 1 CPU and 1e"):
        run_scene_jobs([("a", (0, os.devnull))], _square_or_fail, engine="ray",
                       resources=huge, console=_quiet())  # fmt: skip


def _killed_once(payload) -> str:
    """Prepares a scene; the first attempt at the first scene SIGKILLs its own worker after
    writing half a temp file (the marker file says the kill happened)."""
    _scene_dir, _cfg, cache_dir, scene_id = payload
    marker = Path(cache_dir).parents[2] / "killed-once"
    if scene_id == "demo0000_00" and not marker.exists():
        marker.write_text(f"{os.getpid()}\n")
        (Path(cache_dir) / f"{scene_id}.tar.{os.getpid()}-dead.tmp").write_bytes(b"half a tar")
        os.kill(os.getpid(), signal.SIGKILL)
    return REAL_PREPARE(payload)


def test_worker_killed_mid_scene_is_retried_to_the_same_bytes(
    ray_address, scenes, local_build, tmp_path, monkeypatch
):
    monkeypatch.setattr(shards_mod, "_prepare_job", _killed_once)
    out = tmp_path / "out"
    summary = build_shards(_cfg(scenes, out, engine="ray", workers=2), _quiet())
    killed_pid = int((tmp_path / "killed-once").read_text())
    assert killed_pid != os.getpid()  # the worker died, not this driver ...
    with pytest.raises(ProcessLookupError):
        os.kill(killed_pid, 0)  # ... and is gone
    (cache,) = (out / ".cache").iterdir()
    assert (cache / f"demo0000_00.tar.{killed_pid}-dead.tmp").exists()  # it died mid-write
    assert list(summary.failed) == [BROKEN] and summary.samples == 2  # no rerun needed
    assert _output_bytes(out) == _output_bytes(local_build[0])


DRIVER = """
import os, sys, time
from pathlib import Path
from rich.console import Console
from ross3d_data.shards import build as shards_mod
from ross3d_data.shards.build import ShardConfig, build_shards
from ross3d_data.shards.sample import SampleConfig

real = shards_mod._prepare_job

def slow_after_first(payload):  # pickled by value (defined in __main__)
    if payload[3] == "demo0001_00":
        Path(payload[2]).parents[2].joinpath("slow.pid").write_text(str(os.getpid()))
        time.sleep(60)  # the driver is killed while this scene runs
    return real(payload)

shards_mod._prepare_job = slow_after_first
scenes, out, address = sys.argv[1:]
build_shards(ShardConfig(scenes=(Path(scenes),), out=Path(out), sample=SampleConfig(views=4),
                         max_shard_bytes=1 << 16, engine="ray", workers=1,
                         ray_address=address), Console(file=open("/dev/null", "w")))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_driver_killed_then_rerun_gives_the_same_bytes(ray_address, scenes, local_build, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(scenes), str(out), ray_address]
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "slow.pid").exists():  # demo0000_00 done, demo0001_00 running
        assert driver.poll() is None and time.monotonic() < deadline, "driver never got going"
        time.sleep(0.2)
    time.sleep(0.5)  # the pid file is complete
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    worker = int((tmp_path / "slow.pid").read_text())
    while _alive(worker):  # Ray stops the tasks of a dead driver
        assert time.monotonic() < deadline, "the dead driver's task kept running"
        time.sleep(0.2)
    assert list(out.glob(".cache/*/demo0000_00.tar"))
    assert not (out / "manifest.json").exists() and not list(out.glob("shard-*.tar"))
    summary = build_shards(_cfg(scenes, out, engine="ray", workers=2), _quiet())
    assert summary.reused == 1  # the scene finished before the kill is not redone
    assert list(summary.failed) == [BROKEN] and summary.samples == 2
    assert _output_bytes(out) == _output_bytes(local_build[0])
