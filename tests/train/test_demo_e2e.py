"""`ross3d-model demo` end to end (slow: minutes on 2 cores)."""

import json

import pytest
from ross3d_model.cli import app
from ross3d_model.demo import DemoConfig
from ross3d_model.inference.predict import BENCHMARKS
from ross3d_model.report import loss_trend
from ross3d_model.training.metrics import read_metrics
from typer.testing import CliRunner


@pytest.mark.slow
def test_demo_writes_metrics_scores_and_report_and_reconstruction_losses_fall(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out / "report.md") in result.output.replace("\n", "")
    records = read_metrics(out / "train" / "metrics.jsonl")
    assert len(records) == DemoConfig(out=out).steps  # the CLI's default is the config's
    for key in ("bev", "cross_view"):
        trend = loss_trend(records, key)
        assert trend.last < trend.first, (key, trend)
    scores = json.loads((out / "scores.json").read_text())  # benchmark -> metrics
    assert set(scores) == set(BENCHMARKS)
    assert {"EM", "CIDEr"} <= set(scores["scanqa"]) and "Acc@0.25" in scores["scanrefer"]
    results = json.loads((out / "score_results.json").read_text())
    assert all(r["missing"] == 0 and r["count"] > 0 for r in results.values())
    report = (out / "report.md").read_text()
    for picture in ("bev.png", "_views.png", "loss_trends.png"):
        assert picture in report
    assert "| bev |" in report and "| cross_view |" in report and "scanrefer" in report
