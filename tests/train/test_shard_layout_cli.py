"""`train` on shards built for more views than the model config takes: one line naming the fix,
before any model is built (issue: 32-view shards + the tiny model died with "6892 tokens exceed
max_length 4096" and a traceback)."""

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))

from many_scene_shards import build_many_scene_shards
from ross3d_model.cli import app
from ross3d_model.configuration.model import load_config


def test_train_refuses_shards_with_more_views_than_the_model_takes(tmp_path):
    shards = build_many_scene_shards(tmp_path / "s", n_train=2)["shards"]
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["sample"]["views"] = 32  # as build-shards' default would have made them
    (shards / "manifest.json").write_text(json.dumps(manifest))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"model": "tiny", "train": {"micro_batch_size": 1}}))
    out = tmp_path / "out"
    args = ["train", "--config", str(run), "--shards", str(shards), "--output-dir", str(out),
            "--dry-run"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    views = load_config("tiny").tokens.num_views
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert f"--views {views}" in text and "32 views per clip" in text
    assert "Traceback" not in res.output
    assert not (out / "data_order.jsonl").exists()
