"""predict: every benchmark's output is accepted by `ross3d-eval score`; resumable; Scan2Cap
queried with proposals only; the protocol recorded for `ross3d-eval report`; torchrun parts."""

import json
import os
import subprocess
import sys

import pytest
from ross3d_eval.report import write_report
from ross3d_model.inference.parts import existing_keys
from ross3d_model.inference.predict import (
    BENCHMARKS,
    PredictConfig,
    instruction_key,
    run_predict,
)
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def exported(demo_data, tmp_path_factory):
    """An untrained tiny model exported the way training exports it."""
    import torch
    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import DataConfig
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


def _gt_boxes(demo_data) -> dict:
    return json.loads(demo_data["annotations"]["boxes"].read_text())


def _config(demo_data, exported, out, benchmarks=BENCHMARKS, **kw) -> PredictConfig:
    kw.setdefault("boxes", demo_data["annotations"]["boxes"])  # GT boxes as proposals: oracle
    kw.setdefault("max_new_tokens", 3)
    return PredictConfig(exported, demo_data["shards"], list(benchmarks), out, **kw)


def _predict_and_score(demo_data, exported, out_dir, limit):
    from ross3d_model.demo import score_all

    cfg = _config(demo_data, exported, out_dir / "{benchmark}.jsonl", batch_size=3, limit=limit)
    summaries = {s.benchmark: s for s in run_predict(cfg)}
    return summaries, score_all({b: s.path for b, s in summaries.items()}, demo_data["annotations"])


def test_a_few_predictions_per_benchmark_are_accepted_by_ross3d_eval(demo_data, exported, tmp_path):
    summaries, scores = _predict_and_score(demo_data, exported, tmp_path, limit=1)
    for bench in BENCHMARKS:
        assert summaries[bench].written == 1, bench
        assert scores[bench]["count"] == _val_count(demo_data, bench) > 1, bench
        assert scores[bench]["missing"] == scores[bench]["count"] - 1, bench
        assert scores[bench]["inference"]["protocol"] == "reference", bench
    (tmp_path / "scanqa_result.json").write_text(json.dumps(scores["scanqa"]))
    report = write_report([tmp_path / "scanqa_result.json"])
    assert "scanqa_result (ross3d; inference: reference)" in report
    (tmp_path / "scanrefer_result.json").write_text(json.dumps(scores["scanrefer"]))
    report = write_report([tmp_path / "scanrefer_result.json"])
    assert "(ross3d; inference: reference; boxes: proposals boxes.json)" in report
    oracle = {**scores["scanrefer"], "inference": {**scores["scanrefer"]["inference"]}}
    oracle["inference"]["proposals"] = None  # predict without --proposals
    (tmp_path / "oracle_result.json").write_text(json.dumps(oracle))
    report = write_report([tmp_path / "oracle_result.json"])
    assert "(ross3d; inference: reference; boxes: GT boxes (oracle))" in report
    boxes = _gt_boxes(demo_data)
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
    first = run_predict(_config(demo_data, exported, out, ["scanqa"], limit=2, max_new_tokens=2))
    assert first[0].written == 2
    out.write_text(out.read_text() + '{"question_id": "torn')  # a kill mid-write
    args = ["predict", "--checkpoint", str(exported), "--benchmark", "scanqa", "--out", str(out),
            "--shards", str(demo_data["shards"]), "--max-new-tokens", "2"]  # fmt: skip
    from ross3d_model.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "kept 2 existing" in result.output and "items/s" in result.output
    keys = [json.loads(line)["question_id"] for line in out.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == _val_count(demo_data, "scanqa")
    assert existing_keys(out, "scanqa") == {(k,) for k in keys}
    other = CliRunner().invoke(app, [*args, "--protocol", "ours"])  # same file, other protocol
    assert other.exit_code == 2 and "protocol: 'reference' -> 'ours'" in other.output


def test_predict_builds_only_what_inference_uses(exported):
    import torch
    from ross3d_model.inference.predict import load_checkpoint

    for dtype, torch_dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model, _ = load_checkpoint(exported, "cpu", dtype)
        assert model.reconstructor is None and model.latent_tokenizer is None  # no VAE, no DiT
        assert not any(p.is_meta for p in model.parameters())
        assert {p.dtype for p in model.parameters()} == {torch_dtype}


def test_one_process_merges_parts_left_by_a_torchrun_run(demo_data, exported, tmp_path):
    out = tmp_path / "scanqa.jsonl"
    run_predict(_config(demo_data, exported, out, ["scanqa"], max_new_tokens=2))
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0])
    (tmp_path / "scanqa.jsonl.part-1-of-2.jsonl").write_text("".join(lines[-2:]))
    summary = run_predict(_config(demo_data, exported, out, ["scanqa"], max_new_tokens=2))[0]
    assert (summary.skipped_existing, summary.written) == (3, len(lines) - 3)
    assert out.read_text() == "".join(lines)  # item order restored
    assert not list(tmp_path.glob("*.part-*"))


def test_predict_errors_are_clear(demo_data, exported, tmp_path):
    with pytest.raises(ValueError, match="unknown benchmarks"):
        _config(demo_data, exported, tmp_path / "p.jsonl", ["scannet"])
    with pytest.raises(ValueError, match="benchmark"):
        _config(demo_data, exported, tmp_path / "p.jsonl", ["scanqa", "sqa3d"])
    with pytest.raises(ValueError, match="protocol"):
        _config(demo_data, exported, tmp_path / "p.jsonl", ["scanqa"], protocol="leo")
    with pytest.raises(ValueError, match="dtype"):
        _config(demo_data, exported, tmp_path / "p.jsonl", ["scanqa"], device="cpu", dtype="fp8")
    with pytest.raises(ValueError, match="scan2cap at val needs --proposals"):
        _config(demo_data, exported, tmp_path / "p.jsonl", ["scan2cap"], boxes=None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": "x"}\n{"question_id": "1", "answer": "y"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        existing_keys(bad, "scanqa")
    with pytest.raises(ValueError, match="no exported model"):
        run_predict(_config(demo_data, tmp_path, tmp_path / "p.jsonl", ["scanqa"]))


def test_eval_time_proposals_replace_the_gt_candidates(demo_data, exported, tmp_path):
    proposals = {
        scene: {str(100 + int(k)): [b[0] + 10.0, *b[1:]] for k, b in objs.items()}
        for scene, objs in _gt_boxes(demo_data).items()
    }
    path = tmp_path / "proposals.json"
    path.write_text(json.dumps(proposals))
    out = tmp_path / "scanrefer.jsonl"
    assert (
        run_predict(_config(demo_data, exported, out, ["scanrefer"], boxes=path, limit=2))[
            0
        ].written
        == 2
    )
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        candidates = list(proposals[rec["scene_id"]].values())
        assert any(rec["box"] == pytest.approx(b, abs=1e-5) for b in candidates)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"proposals\.json"):
        run_predict(_config(demo_data, exported, tmp_path / "x.jsonl", ["scanrefer"], boxes=path))


def test_the_published_proposals_layout_is_read(demo_data, exported, tmp_path):
    """scannet_val_pred_box.json: {"scannet/<scene>": [box, ...]}, ids = list positions."""
    published = {
        f"scannet/{scene}": [[b[0] + 10.0, *b[1:]] for b in objs.values()]
        for scene, objs in _gt_boxes(demo_data).items()
    }
    path = tmp_path / "scannet_val_pred_box.json"
    path.write_text(json.dumps(published))
    out = tmp_path / "{benchmark}.jsonl"
    cfg = _config(demo_data, exported, out, ["scanrefer", "multi3drefer"], boxes=path, limit=2)
    assert [s.written for s in run_predict(cfg)] == [2, 2]
    for line in (tmp_path / "scanrefer.jsonl").read_text().splitlines():
        rec = json.loads(line)
        candidates = published[f"scannet/{rec['scene_id']}"]
        assert any(rec["box"] == pytest.approx(b, abs=1e-5) for b in candidates)
    for line in (tmp_path / "multi3drefer.jsonl").read_text().splitlines():
        rec = json.loads(line)
        candidates = published[f"scannet/{rec['scene_id']}"]
        assert all(any(b == pytest.approx(c, abs=1e-5) for c in candidates) for b in rec["boxes"])


def test_scenes_without_proposals_get_empty_predictions(demo_data, exported, tmp_path):
    path = tmp_path / "none.json"
    path.write_text("{}")
    out = tmp_path / "{benchmark}.jsonl"
    cfg = _config(demo_data, exported, out, ["scanrefer", "multi3drefer", "scan2cap"], boxes=path)
    summaries = {s.benchmark: s for s in run_predict(cfg)}
    for bench, s in summaries.items():
        assert s.missing_proposals == s.written == _val_count(demo_data, bench), bench
    assert summaries["scan2cap"].unmatched == summaries["scan2cap"].written
    read = {
        b: [json.loads(x) for x in s.path.read_text().splitlines()] for b, s in summaries.items()
    }
    assert {tuple(r["box"]) for r in read["scanrefer"]} == {(0.0,) * 6}
    assert all(r["boxes"] == [] for r in read["multi3drefer"])
    assert all(r["caption"] == "" for r in read["scan2cap"])


def test_scan2cap_queries_the_matched_proposal_never_the_gt_box(demo_data, exported, tmp_path):
    """Proposals = each GT box shifted along x by 10% of its size (IoU 0.9/1.1 = 0.82 >= 0.5),
    except object 0 of each scene, moved 10 m away (IoU 0): object 0 gets the empty caption
    without the model, the others report the shifted proposal, never the GT box."""
    gt = _gt_boxes(demo_data)
    proposals = {
        scene: {k: [b[0] + (10.0 if k == "0" else 0.1 * b[3]), *b[1:]] for k, b in objs.items()}
        for scene, objs in gt.items()
    }
    path = tmp_path / "proposals.json"
    path.write_text(json.dumps(proposals))
    out = tmp_path / "scan2cap.jsonl"
    summary = run_predict(_config(demo_data, exported, out, ["scan2cap"], boxes=path))[0]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == summary.written == _val_count(demo_data, "scan2cap")
    unmatched = [r for r in records if str(r["object_id"]) == "0"]
    assert summary.unmatched == len(unmatched) > 0
    for rec in records:
        proposal = proposals[rec["scene_id"]][str(rec["object_id"])]
        assert rec["box"] == pytest.approx(proposal, abs=1e-5)
        assert rec["box"] != pytest.approx(gt[rec["scene_id"]][str(rec["object_id"])], abs=1e-3)
    assert all(r["caption"] == "" for r in unmatched)


def test_the_protocol_is_recorded_beside_the_predictions(demo_data, exported, tmp_path):
    """The sidecar ross3d-eval reads (the report side is checked where scores are computed)."""
    out = tmp_path / "scanqa.jsonl"
    run_predict(_config(demo_data, exported, out, ["scanqa"], limit=1, protocol="ours"))
    meta = json.loads((tmp_path / "scanqa.jsonl.meta.json").read_text())
    assert (meta["protocol"], meta["spatial_prompt"], meta["max_new_tokens"]) == ("ours", True, 3)
    assert meta["proposals"] is None  # QA never reads the proposals
    ref = _config(demo_data, exported, tmp_path / "r.jsonl", ["scanqa"], max_new_tokens=None)
    assert ref.new_tokens(16) == 512 and not ref.spatial_prompt


def test_dump_inputs_shows_the_public_eval_input(demo_data, exported, tmp_path):
    """--dump-inputs: one line per item with the decoded input; the reference protocol's user
    turn starts with `<image>\n` and holds no spatial prompt, "ours" holds it."""
    from ross3d_model.cli import app
    from ross3d_model.configuration.model import SPATIAL_PROMPT

    benches = ["scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer"]
    dump = tmp_path / "inputs.jsonl"
    args = ["predict", "--checkpoint", str(exported), "--out", str(tmp_path / "{benchmark}.jsonl"),
            "--shards", str(demo_data["shards"]), "--proposals",
            str(demo_data["annotations"]["boxes"]), "--inference-protocol", "reference",
            "--limit", "2", "--max-new-tokens", "2", "--dump-inputs", str(dump)]  # fmt: skip
    result = CliRunner().invoke(app, [*args, *(a for b in benches for a in ("--benchmark", b))])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in dump.read_text().splitlines()]
    assert [(x["benchmark"], x.keys()) for x in lines] == [
        (b, {"id", "benchmark", "text"}) for b in benches for _ in range(2)
    ]
    for x in lines:
        assert x["text"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
        assert "<|im_start|>user\n<image>\n" in x["text"] and x["text"].count("<image>") == 1
        assert SPATIAL_PROMPT not in x["text"]
    ours = tmp_path / "ours.jsonl"
    cfg = _config(demo_data, exported, tmp_path / "o.jsonl", ["scanqa"], limit=1, protocol="ours",
                  dump_inputs=ours)  # fmt: skip
    run_predict(cfg)
    text = json.loads(ours.read_text())["text"]
    assert f"<|im_start|>user\n<image>\n{SPATIAL_PROMPT}\n " in text


def test_fp16_rounds_boxes_as_the_public_half_casts(demo_data, exported, tmp_path):
    """dtype fp16: candidates reach the model (and the reported box) as fp16 values (the public
    `video_dict[k].half()`); 10.0123 is not an fp16 value (nearest: 10.015625)."""
    import torch
    from ross3d_model.inference.predict import fp16_values

    assert fp16_values(torch.tensor([10.0123])).item() == 10.015625
    proposals = {
        scene: {k: [b[0] + 10.0123, *b[1:]] for k, b in objs.items()}
        for scene, objs in _gt_boxes(demo_data).items()
    }
    path = tmp_path / "proposals.json"
    path.write_text(json.dumps(proposals))
    out = tmp_path / "scanrefer.jsonl"
    run_predict(_config(demo_data, exported, out, ["scanrefer"], boxes=path, limit=2, dtype="fp16"))
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        half = [fp16_values(torch.tensor(b)).tolist() for b in proposals[rec["scene_id"]].values()]
        assert rec["box"] in half
        assert rec["box"] not in list(proposals[rec["scene_id"]].values())


TORCHRUN_BENCHMARKS = ("scanqa", "scan2cap", "multi3drefer")  # text, <coord>, <ground>


def _cli_predict(demo_data, exported, out, nproc: int, batch_size: int) -> None:
    """`predict` for every benchmark through the real CLI; under torchrun (gloo) if nproc > 1."""
    args = ["predict", "--checkpoint", str(exported), "--out", str(out / "{benchmark}.jsonl"),
            "--shards", str(demo_data["shards"]), "--boxes", str(demo_data["annotations"]["boxes"]),
            "--max-new-tokens", "3", "--batch-size", str(batch_size), "--device", "cpu"]  # fmt: skip
    args += [a for b in TORCHRUN_BENCHMARKS for a in ("--benchmark", b)]
    launcher = [sys.executable, "-m", "ross3d_model.cli"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(nproc), "-m", "ross3d_model.cli"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_write_the_same_files_as_one(demo_data, exported, tmp_path):
    """torchrun with 2 gloo processes (batch 8, prefix reuse) == one process at batch 1, byte
    for byte; a part left by a killed 2-process run is resumed and merged."""
    one, two = tmp_path / "one", tmp_path / "two"
    _cli_predict(demo_data, exported, one, nproc=1, batch_size=1)
    first = (one / "scanqa.jsonl").read_text().splitlines(keepends=True)
    two.mkdir()
    (two / "scanqa.jsonl.part-1-of-2.jsonl").write_text(first[-1])  # rank 1's last, done
    _cli_predict(demo_data, exported, two, nproc=2, batch_size=8)
    for bench in TORCHRUN_BENCHMARKS:
        assert (two / f"{bench}.jsonl").read_text() == (one / f"{bench}.jsonl").read_text(), bench
    assert not list(two.glob("*.part-*"))


@pytest.mark.gpu
def test_cuda_predictions_do_not_depend_on_the_batch_size(demo_data, exported, tmp_path):
    """fp32 on the GPU: batch 1 == batch 8 with prefix reuse; fp16 (the reference protocol's
    default, as published) runs; bf16 is the default of "ours"."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    files = []
    for batch in (1, 8):
        out = tmp_path / f"b{batch}" / "{benchmark}.jsonl"
        cfg = _config(demo_data, exported, out, TORCHRUN_BENCHMARKS, device="cuda", dtype="fp32",
                      batch_size=batch)  # fmt: skip
        files.append([s.path.read_text() for s in run_predict(cfg)])
    assert files[0] == files[1]
    cfg = _config(demo_data, exported, tmp_path / "fp16" / "{benchmark}.jsonl", TORCHRUN_BENCHMARKS)
    assert cfg.dtype == "fp16"
    ours = _config(demo_data, exported, tmp_path / "o.jsonl", ["scanqa"], protocol="ours")
    assert ours.dtype == "bf16"
    assert [s.written for s in run_predict(cfg)] == [
        _val_count(demo_data, b) for b in TORCHRUN_BENCHMARKS
    ]
