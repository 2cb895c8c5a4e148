"""predict: every benchmark's output is accepted by `ross3d-eval score`; resumable."""

import json

import pytest
from ross3d_model.predict import (
    BENCHMARKS,
    PredictConfig,
    existing_keys,
    instruction_key,
    run_predict,
)
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def exported(demo_data, tmp_path_factory):
    """An untrained tiny model exported the way training exports it."""
    import torch
    from ross3d_model.config import load_config
    from ross3d_model.training.config import DataConfig
    from ross3d_model.training.task import Ross3DTask

    task = Ross3DTask(load_config("tiny"), demo_data["shards"], DataConfig())
    torch.manual_seed(0)
    model = task.build_model()
    out = tmp_path_factory.mktemp("run") / "model"
    task.export(model, model.state_dict(), out)
    return out.parent


def _val_count(demo_data, task: str) -> int:
    """Distinct scored ids among the shards' val instructions of `task`."""
    path = demo_data["shards"] / "instructions-val.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return len({instruction_key(r) for r in rows if r["task"] == task})


def _predict_and_score(demo_data, exported, out_dir, limit):
    from ross3d_model.demo import score_all

    cfg = PredictConfig(
        exported, demo_data["shards"], list(BENCHMARKS), out_dir / "{benchmark}.jsonl",
        batch_size=3, max_new_tokens=3, limit=limit,
    )  # fmt: skip
    summaries = {s.benchmark: s for s in run_predict(cfg)}
    return summaries, score_all({b: s.path for b, s in summaries.items()}, demo_data["annotations"])


def test_a_few_predictions_per_benchmark_are_accepted_by_ross3d_eval(demo_data, exported, tmp_path):
    summaries, scores = _predict_and_score(demo_data, exported, tmp_path, limit=1)
    for bench in BENCHMARKS:
        assert summaries[bench].written == 1, bench
        assert scores[bench]["count"] == _val_count(demo_data, bench) > 1, bench
        assert scores[bench]["missing"] == scores[bench]["count"] - 1, bench
    # GT boxes are the candidates: every ScanRefer box is one of the scene's GT boxes
    boxes = json.loads(demo_data["annotations"]["boxes"].read_text())
    for line in (tmp_path / "scanrefer.jsonl").read_text().splitlines():
        rec = json.loads(line)
        gt = [list(map(float, b)) for b in boxes[rec["scene_id"]].values()]
        assert any(rec["box"] == pytest.approx(b, abs=1e-5) for b in gt)


@pytest.mark.slow
def test_predictions_of_all_five_benchmarks_are_scored_by_ross3d_eval(
    demo_data, exported, tmp_path
):
    summaries, scores = _predict_and_score(demo_data, exported, tmp_path, limit=None)
    for bench in BENCHMARKS:
        assert summaries[bench].written == _val_count(demo_data, bench) > 0
        assert scores[bench]["missing"] == 0, bench
        assert scores[bench]["count"] == summaries[bench].written, bench


def test_predict_resumes_and_skips_existing_ids(demo_data, exported, tmp_path):
    out = tmp_path / "scanqa.jsonl"
    first = run_predict(PredictConfig(exported, demo_data["shards"], ["scanqa"], out, limit=2))
    assert first[0].written == 2
    out.write_text(out.read_text() + '{"question_id": "torn')  # a kill mid-write
    runner = CliRunner()
    from ross3d_model.cli import app

    args = ["predict", "--checkpoint", str(exported), "--benchmark", "scanqa", "--out", str(out),
            "--shards", str(demo_data["shards"]), "--max-new-tokens", "2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "kept 2 existing" in result.output
    keys = [json.loads(line)["question_id"] for line in out.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == _val_count(demo_data, "scanqa")
    assert existing_keys(out, "scanqa") == {(k,) for k in keys}


def test_predict_errors_are_clear(demo_data, exported, tmp_path):
    with pytest.raises(ValueError, match="unknown benchmarks"):
        PredictConfig(exported, demo_data["shards"], ["scannet"], tmp_path / "p.jsonl")
    with pytest.raises(ValueError, match="benchmark"):
        PredictConfig(exported, demo_data["shards"], ["scanqa", "sqa3d"], tmp_path / "p.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": "x"}\n{"question_id": "1", "answer": "y"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        existing_keys(bad, "scanqa")
    with pytest.raises(ValueError, match="no exported model"):
        run_predict(PredictConfig(tmp_path, demo_data["shards"], ["scanqa"], tmp_path / "p.jsonl"))


def test_eval_time_proposals_replace_the_gt_candidates(demo_data, exported, tmp_path):
    gt = json.loads(demo_data["annotations"]["boxes"].read_text())
    proposals = {
        scene: {str(100 + int(k)): [b[0] + 10.0, *b[1:]] for k, b in objs.items()}
        for scene, objs in gt.items()
    }
    path = tmp_path / "proposals.json"
    path.write_text(json.dumps(proposals))
    out = tmp_path / "scanrefer.jsonl"
    cfg = PredictConfig(exported, demo_data["shards"], ["scanrefer"], out, boxes=path, limit=2)
    assert run_predict(cfg)[0].written == 2
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        candidates = list(proposals[rec["scene_id"]].values())
        assert any(rec["box"] == pytest.approx(b, abs=1e-5) for b in candidates)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"proposals\.json"):
        run_predict(
            PredictConfig(
                exported, demo_data["shards"], ["scanrefer"], tmp_path / "x.jsonl", boxes=path
            )
        )
