"""`ross3d-eval score` / `report` in process (typer CliRunner)."""

import json

from evalfiles import write_jsonl
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
    assert set(data) == {"benchmark", "protocol", "count", "missing", "metrics"}
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
