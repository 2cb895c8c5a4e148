import pytest
from rich.console import Console
from ross3d_data.core.errors import SceneError
from ross3d_data.core.jobs import run_scene_jobs


def _work(x: int) -> str:
    if x == 3:
        raise SceneError(f"/data/scene{x}/scene{x}.sens", "truncated in frame 7 of 9")
    if x == 4:
        raise ValueError("bad value")
    return f"squared {x * x}"


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"), width=200)


def test_failures_do_not_stop_others_and_are_reported():
    # the process-pool path (workers > 1) is covered by test_export's bad-scene test
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
