"""Semi-supervised mixing: ScanNet text beside vision-only datasets, each with its share of the
steps, shown by the dry run (issue 17)."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))

from many_scene_shards import build_many_scene_shards
from ross3d_model.cli import app

ARKIT = tuple(f"arkitscenes-4{i:07d}" for i in range(6))
RSCAN = tuple(f"3rscan-{i}a0b-c{i}" for i in range(4))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return build_many_scene_shards(
        tmp_path_factory.mktemp("mix"), n_train=12, n_textless=2, other_textless=ARKIT + RSCAN
    )


def _dry_run(tmp_path: Path, shards: Path, sources: dict) -> tuple[list[dict], str]:
    run = {"model": "tiny", "train": {"micro_batch_size": 1, "grad_accum": 4, "seed": 3},
           "data": {"group_by_task": True, "vision_only_sources": sources}}  # fmt: skip
    config = tmp_path / "run.json"
    config.write_text(json.dumps(run))
    out = tmp_path / "out"
    args = ["train", "--config", str(config), "--shards", str(shards), "--output-dir", str(out),
            "--dry-run"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    steps = [json.loads(line) for line in (out / "data_order.jsonl").open()]
    return steps, " ".join(res.output.split())


def _kind(step: dict) -> str:
    kinds = {it.get("dataset", it["task"]) if it["task"] == "vision" else "text"
             for it in step["items"]}  # fmt: skip
    assert len(kinds) == 1, kinds  # one group per global batch
    return kinds.pop()


def test_a_share_of_the_steps_is_met_and_a_null_share_takes_what_its_clips_fill(tmp_path, mixed):
    steps, note = _dry_run(tmp_path, mixed["shards"], {"arkitscenes": 0.25, "3rscan": None})
    kinds = Counter(_kind(s) for s in steps)
    text = kinds["text"]
    # 25 % of all steps: n = round(0.25 * text / 0.75) batches of 4 drawn from 6 ARKit clips
    assert kinds["arkitscenes"] == round(0.25 * text / 0.75) > 0
    assert kinds["3rscan"] == len(RSCAN) // 4 == 1  # null share: its full blocks
    assert "scannet" not in kinds  # ScanNet's text-free clips were not asked for
    arkit = [it["scene_id"] for s in steps if _kind(s) == "arkitscenes" for it in s["items"]]
    assert set(arkit) <= set(ARKIT) and "steps per group:" in note and "vision:arkitscenes" in note


def test_unknown_datasets_and_shares_without_grouping_are_refused(tmp_path, mixed):
    run = {"model": "tiny", "data": {"vision_only_sources": {"matterport": None}}}
    config = tmp_path / "run.json"
    config.write_text(json.dumps(run))
    args = ["train", "--config", str(config), "--shards", str(mixed["shards"]),
            "--output-dir", str(tmp_path / "o"), "--dry-run"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "matterport" in res.output and "Traceback" not in res.output
