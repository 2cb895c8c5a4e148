import sys

import pytest
from rich.console import Console
from ross3d_data.core.engines import EngineError, Outcome, in_order
from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import run_scene_jobs
from ross3d_data.scannet.export import ExportConfig
from ross3d_data.shards.build import ShardConfig


def _work(x: int) -> str:
    if x == 3:
        raise SceneError(f"/data/scene{x}/scene{x}.sens", "truncated in frame 7 of 9")
    if x == 4:
        raise ValueError("bad value")
    return f"squared {x * x}"


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"), width=200)


def test_failures_do_not_stop_others_and_are_reported():
    # the process-pool path (workers > 1) is covered by test_export and test_shards
    items = [(f"scene{x}", x) for x in range(6)]
    s = run_scene_jobs(items, _work, desc="square", console=_quiet())
    assert [r.name for r in s.results] == [f"scene{x}" for x in range(6)]  # input order
    assert [r.status for r in s.results] == ["done"] * 3 + ["failed"] * 2 + ["done"]
    assert s.results[5].detail == "squared 25"
    assert s.results[3].detail == "/data/scene3/scene3.sens: truncated in frame 7 of 9"
    assert s.results[4].detail == "ValueError: bad value"
    assert (s.count("done"), s.count("failed"), s.exit_code) == (4, 2, 1)


def test_skip_if_done_unless_overwrite():
    items = [(f"s{x}", x) for x in (0, 1, 2, 5)]
    s = run_scene_jobs(items, _work, is_done=lambda x: x < 2, console=_quiet())
    assert [r.status for r in s.results] == ["skipped", "skipped", "done", "done"]
    assert s.exit_code == 0
    s = run_scene_jobs(items, _work, is_done=lambda x: x < 2, overwrite=True, console=_quiet())
    assert [r.status for r in s.results] == ["done"] * 4


def test_summary_table_names_failed_scenes_with_reason():
    s = run_scene_jobs([("a", 1), ("bad_scene", 3)], _work, desc="export", console=_quiet())
    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115
    s.print(console)
    text = console.export_text()
    assert "export: 1 done, 0 skipped (already complete), 1 failed" in text
    assert "bad_scene" in text and "truncated in frame 7 of 9" in text


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_scene_jobs([], _work, workers=0)


def test_unknown_engine_and_stray_ray_address_are_refused(tmp_path):
    with pytest.raises(ValueError, match="engine must be one of local, ray, got 'spark'"):
        run_scene_jobs([], _work, engine="spark")
    with pytest.raises(ValueError, match="ray_address='auto' is only used by engine 'ray'"):
        ExportConfig(out=tmp_path, ray_address="auto")
    with pytest.raises(ValueError, match="engine must be one of"):
        ShardConfig(scenes=(tmp_path,), out=tmp_path / "s", engine="dask")


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(EngineError) as err:
        run_scene_jobs([("a", 1)], _work, engine="ray", console=_quiet())
    assert str(err.value) == (
        "engine 'ray' needs Ray, which is not installed: pip install 'ross3d-data[ray]'"
    )


def test_in_order_reorders_finish_order():
    done = [
        (2, Outcome(True, "c", 0.0)),
        (0, Outcome(True, "a", 0.0)),
        (1, Outcome(False, "b", 0.0)),
    ]
    assert [o.value for o in in_order(iter(done), 3)] == ["a", "b", "c"]
    with pytest.raises(RuntimeError, match="1 of 3 outcomes"):
        list(in_order(iter(done[1:2]), 3))


def test_cli_without_ray_is_one_red_line(tiny_scene, tmp_path, monkeypatch):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    scene = tiny_scene(root=tmp_path / "scans").path
    monkeypatch.setitem(sys.modules, "ray", None)
    args = ["export-frames", str(scene), "--out", str(tmp_path / "posed"), "--engine", "ray"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "pip install 'ross3d-data[ray]'" in res.output and "Traceback" not in res.output
