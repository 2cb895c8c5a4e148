"""The tiny model trains on ScanNet demo text + vision-only clips of every other format, all in
one shard folder built from the datasets' published roots (issue 17; slow: about a minute)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))

from mixed_roots import SCANNET_IDS, VISION_KEYS, write_roots
from ross3d_model.cli import app
from ross3d_model.training.metrics import read_metrics

pytestmark = pytest.mark.slow
SOURCES = {name: None for name in VISION_KEYS}  # each dataset: the batches its clips fill


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    from ross3d_data.shards.build import ShardConfig, build_shards
    from ross3d_data.shards.sample import SampleConfig

    root = tmp_path_factory.mktemp("mix")
    roots = write_roots(root, scannet_frames=16)
    # one ScanNet instruction keeps the epoch short: 1 text step + 1 step per vision source
    text = roots["instructions"].read_text().splitlines()
    one = root / "one_instruction.jsonl"
    one.write_text(text[0] + "\n")
    cfg = ShardConfig(
        scenes=tuple(roots[name] for name in ("scannet", *VISION_KEYS)),
        out=root / "shards",
        instructions=(one,),
        sample=SampleConfig(views=4),  # the tiny model's views per clip
    )
    summary = build_shards(cfg)
    # the second ScanNet scene has no text either, but scannet is not a vision-only source
    assert not summary.failed and summary.vision_only == len(VISION_KEYS) + 1
    return cfg.out


def _train(tmp_path: Path, shards: Path, name: str, *extra: str) -> Path:
    run = {
        "model": "tiny",
        "train": {"max_steps": None, "micro_batch_size": 1, "grad_accum": 1, "lr": 1e-3,
                  "warmup_ratio": 0.0, "save_every": 100, "keep_checkpoints": 0, "seed": 5},
        "data": {"group_by_task": True, "vision_only_sources": SOURCES},
    }  # fmt: skip
    config = tmp_path / "run.json"
    config.write_text(json.dumps(run))
    out = tmp_path / name
    args = ["train", "--config", str(config), "--shards", str(shards), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return out


def _group(step: dict) -> str:
    (item,) = step["items"]  # micro batch 1, one process, no accumulation
    return item["dataset"] if item["task"] == "vision" else "text"


def test_tiny_model_trains_on_scannet_text_and_every_vision_only_format(shards, tmp_path):
    order_dir = _train(tmp_path, shards, "dry", "--dry-run")
    order = [json.loads(line) for line in (order_dir / "data_order.jsonl").open()]
    groups = [_group(step) for step in order]
    assert sorted(groups) == sorted(["text", *VISION_KEYS])  # one step each
    scenes = {g: step["items"][0]["scene_id"] for g, step in zip(groups, order, strict=True)}
    assert scenes["text"] in SCANNET_IDS
    assert {g: s for g, s in scenes.items() if g != "text"} == VISION_KEYS

    records = read_metrics(_train(tmp_path, shards, "run") / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, len(order) + 1))
    for group, record in zip(groups, records, strict=True):
        assert math.isfinite(record["loss"]) and math.isfinite(record["bev"]), (group, record)
        if record["cross_view_active"]:
            assert math.isfinite(record["cross_view"]), (group, record)
        if group == "text":
            assert math.isfinite(record["lm"]), record
        else:  # reconstruction only: no text, nothing to ground
            assert record["lm"] is None and record["grounding"] is None, (group, record)
