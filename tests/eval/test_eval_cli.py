"""`ross3d-eval score` / `report` in process (typer CliRunner)."""

import json
import re

import pytest
from evalfiles import write_json, write_jsonl
from ross3d_eval.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def score_args(files, *extra):
    return [
        "score",
        "--benchmark",
        "scanrefer",
        "--predictions",
        str(files["predictions"]),
        "--annotations",
        str(files["annotations"]),
        "--boxes",
        str(files["boxes"]),
        *extra,
    ]


def test_score_prints_table_and_writes_json(scanrefer_files, tmp_path):
    out = tmp_path / "scanrefer.json"
    result = runner.invoke(app, score_args(scanrefer_files, "--out", str(out)))
    assert result.exit_code == 0, result.output
    assert "Acc@0.25" in result.stderr and "60.00" in result.stderr
    assert result.stdout == ""  # messages on stderr: stdout is for report's markdown
    data = json.loads(out.read_text())
    assert set(data) == {"benchmark", "protocol", "count", "missing", "missing_ids", "metrics"}
    assert data["missing_ids"] == ["s0/1/0"]  # the 4th query (conftest: IoUs 1, 1/3, 0, -, 0.5)
    assert result.stderr.splitlines()[-2:] == [
        f"warning: 1 of 5 items have no prediction in {scanrefer_files['predictions']} "
        "(scored as wrong): s0/1/0; --strict makes this an error",
        f"wrote {out}",
    ]
    assert (data["benchmark"], data["protocol"], data["count"], data["missing"]) == (
        "scanrefer",
        "ross3d",
        5,
        1,
    )
    assert data["metrics"]["Acc@0.5"] == 40.0


def test_score_bad_input_exits_with_file_and_line(scanrefer_files, tmp_path):
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"scene_id": "s0", "object_id": "7", "ann_id": "0", "box": [0, 0, 0, 1, 1, 1]}],
    )
    files = dict(scanrefer_files, predictions=bad)
    result = runner.invoke(app, score_args(files))
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()  # one line on stderr, no traceback
    assert line.startswith("error: ") and "bad.jsonl:1" in line and "unknown id" in line
    assert result.stdout == ""


def test_score_rejects_unknown_protocol(scanrefer_files):
    result = runner.invoke(app, score_args(scanrefer_files, "--protocol", "official"))
    assert result.exit_code == 2
    assert "not defined for scanrefer" in result.output


def test_report_markdown(scanrefer_files, tmp_path):
    res = tmp_path / "ours_scanrefer.json"
    assert runner.invoke(app, score_args(scanrefer_files, "--out", str(res))).exit_code == 0
    md = tmp_path / "report.md"
    result = runner.invoke(app, ["report", str(res), "--out", str(md)])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert text == result.output.rstrip("\n") + "\n"
    lines = text.splitlines()
    assert lines[0].startswith("| benchmark | metric | ours | source | Ross3D | Video-3D-LLM")
    row = next(line for line in lines if line.startswith("| scanrefer | Acc@0.25 |"))
    assert row.split(" | ")[2:6] == ["60.0", "ours_scanrefer (ross3d)", "61.1", "58.1"]
    sqa = next(line for line in lines if line.startswith("| sqa3d | EM-R |"))
    assert sqa.split(" | ")[2] == "-"  # not scored here


def test_report_rejects_non_result(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}')
    result = runner.invoke(app, ["report", str(path)])
    assert result.exit_code == 2
    assert "x.json" in result.output and "not a result file" in result.output


def test_score_positional_benchmark_still_works_with_a_note(scanrefer_files, tmp_path):
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    assert runner.invoke(app, score_args(scanrefer_files, "--out", str(new))).exit_code == 0
    args = score_args(scanrefer_files, "--out", str(old))
    args.remove("--benchmark")  # `score scanrefer --predictions ...`, the old form
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "note: the positional BENCHMARK is deprecated; use --benchmark"
    )
    assert json.loads(old.read_text()) == json.loads(new.read_text())


def test_strict_makes_a_missing_prediction_an_error(scanrefer_files, tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, score_args(scanrefer_files, "--strict", "--out", str(out)))
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.splitlines() == [
        f"error: {scanrefer_files['predictions']}: 1 of 5 items have no prediction (s0/1/0); "
        "predict every item, or score without --strict (missing items count as wrong)"
    ]
    complete = [
        json.loads(line) for line in scanrefer_files["predictions"].read_text().splitlines()
    ]
    complete.append({"scene_id": "s0", "object_id": "1", "ann_id": "0", "box": [0] * 6})
    files = dict(scanrefer_files, predictions=write_jsonl(tmp_path / "all.jsonl", complete))
    result = runner.invoke(app, score_args(files, "--strict"))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def test_scanqa_score_says_what_it_waits_for_and_lists_missing_ids(tmp_path):
    anns = [{"question_id": f"q{i}", "scene_id": "s0", "answers": ["chair"]} for i in range(8)]
    preds = [{"question_id": "q0", "answer": "chair"}, {"question_id": "q5", "answer": "table"}]
    args = ["score", "--benchmark", "scanqa",
            "--predictions", str(write_jsonl(tmp_path / "p.jsonl", preds)),
            "--annotations", str(write_json(tmp_path / "a.json", anns)),
            "--out", str(tmp_path / "r.json")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "caption metrics: 8 items (METEOR's Java process first loads its tables, ~20 s) ..."
    )
    assert re.fullmatch(r"caption metrics: 8 items done in \d+\.\d s", lines[1])
    assert lines[-2] == (
        f"warning: 6 of 8 items have no prediction in {tmp_path / 'p.jsonl'} (scored as wrong): "
        "q1, q2, q3, q4, q6, ... (1 more); --strict makes this an error"
    )
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["count"], data["missing"]) == (8, 6)
    assert data["missing_ids"] == ["q1", "q2", "q3", "q4", "q6", "q7"]
    assert data["metrics"]["EM"] == 12.5  # 1 of 8: q0


def test_strict_fails_before_the_caption_metrics(tmp_path):
    """The slow caption metrics (~30 s on ScanQA val) are not run for a file --strict rejects."""
    from ross3d_eval import score
    from ross3d_eval.errors import EvalInputError

    class NeverCalled:
        def score(self, gts, res):
            raise AssertionError("caption metrics ran")

    anns = [{"question_id": f"q{i}", "scene_id": "s0", "answers": ["chair"]} for i in range(3)]
    preds = write_jsonl(tmp_path / "p.jsonl", [{"question_id": "q1", "answer": "chair"}])
    with pytest.raises(
        EvalInputError, match=r"p\.jsonl: 2 of 3 items have no prediction \(q0, q2\)"
    ):
        score("scanqa", preds, write_json(tmp_path / "a.json", anns), strict=True,
              caption_scorer=NeverCalled())  # fmt: skip
    caps = [{"scene_id": "s0", "object_id": str(i), "ann_id": "0", "object_name": "chair",
             "description": "a chair."} for i in range(2)]  # fmt: skip
    boxes = write_json(
        tmp_path / "boxes.json", {"s0": {"0": [0, 0, 0, 1, 1, 1], "1": [2, 0, 0, 1, 1, 1]}}
    )
    with pytest.raises(EvalInputError, match=r"1 of 2 items have no prediction \(s0\|1\)"):
        score("scan2cap", write_jsonl(tmp_path / "c.jsonl", [{"scene_id": "s0", "object_id": "0",
              "caption": "a chair", "box": [0, 0, 0, 1, 1, 1]}]), write_json(tmp_path / "r.json", caps),
              boxes=boxes, strict=True, caption_scorer=NeverCalled())  # fmt: skip


def test_first_ids_lists_five_then_counts_the_rest():
    from ross3d_eval.result import first_ids

    assert first_ids(["a", "b"]) == "a, b"
    assert first_ids([str(i) for i in range(12)]) == "0, 1, 2, 3, 4, ... (7 more)"
