"""A newcomer's path through README.md: the Quickstart and the demo walk ("Try the pipeline on demo
scenes (CPU)") run exactly as written, command by command, and the demo walk takes the same
steps, with the same options, as "On real ScanNet" (so neither can drift from the code or from
the other). The README's lines are parsed by `readme_commands`, the same parser that checks
that every documented line parses (`test_cli_vocabulary.py`).

How a line runs: `uv run` is dropped (this is the synced environment), the three CLIs run in
process through typer's CliRunner with the arguments shlex gives, `torchrun` runs as a
subprocess from this environment; everything runs in a fresh working directory, where the
walk's relative paths (`demo`, `work/`, `runs/`, `pred/`, `results/`) land."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from readme_commands import ROOT, bash_blocks, command_lines, section, tool_command

README = (ROOT / "README.md").read_text()
QUICKSTART = "Quickstart"
DEMO_WALK = "Try the pipeline on demo scenes (CPU)"
SCANNET = "On real ScanNet"
# programs of the project's environment: bare, they are "command not found" without an activated venv
PROJECT_PROGRAMS = {"ross3d-data", "ross3d-model", "ross3d-eval", "torchrun", "python", "pytest",
                    "rerun", "ray"}  # fmt: skip
# steps and options of "On real ScanNet" the demo walk leaves out, as its README paragraph says
DEMO_ONLY_STEPS = {("ross3d-data", "make-demo")}
REAL_DATA_ONLY_STEPS = {("ross3d-data", "proposals")}  # needs Mask3D masks (GT boxes stand in)
REAL_DATA_ONLY_OPTIONS = {"--resize-aspect", "--split-list"}  # the 7b resize; ScanNet's val list
# the walk's paths for the ScanNet section's, as its README paragraph says
DEMO_PATHS = {"/data/scannet/scans": "demo", "/data/ross3d/": "work/"}


def _lines(heading: str) -> list[list[str]]:
    return [
        words for block in bash_blocks(section(README, heading)) for words in command_lines(block)
    ]


def _step(words: list[str]) -> tuple[str, str, str]:
    """(launcher, tool, command) of a CLI line: launcher 'torchrun' or 'cli'."""
    tool, args = tool_command(words)
    return ("torchrun" if "torchrun" in words else "cli", tool, args[0])


def _options(words: list[str]) -> set[str]:
    return {w.split("=")[0] for w in words if w.startswith("--")}


def _single_values(words: list[str]) -> dict[str, str]:
    """Option -> value of the options given once with a value."""
    pairs = [(w, v) for w, v in pairwise(words) if w.startswith("--") and not v.startswith("-")]
    names = [name for name, _ in pairs]
    return {name: value for name, value in pairs if names.count(name) == 1}


def _demo_path(path: str) -> str | None:
    for real, demo in DEMO_PATHS.items():
        if path.startswith(real):
            return demo + path.removeprefix(real)
    return None


def test_every_readme_command_of_the_project_runs_through_uv():
    bare = [
        " ".join(words)
        for block in bash_blocks(README)
        for words in command_lines(block)
        if words[0] in PROJECT_PROGRAMS
    ]
    assert not bare, f"README lines that need `uv run` in front: {bare}"


def _cli_steps(heading: str, leave_out: set[tuple[str, str]]) -> list[list[str]]:
    lines = [w for w in _lines(heading) if tool_command(w) is not None]
    return [w for w in lines if _step(w)[1:] not in leave_out]


def test_the_demo_walk_takes_the_scannet_steps_with_their_options():
    demo = _cli_steps(DEMO_WALK, DEMO_ONLY_STEPS)
    real = _cli_steps(SCANNET, REAL_DATA_ONLY_STEPS)
    assert len(real) >= 15
    assert [_step(w) for w in demo] == [_step(w) for w in real]
    for demo_words, real_words in zip(demo, real, strict=True):
        missing = _options(real_words) - _options(demo_words) - REAL_DATA_ONLY_OPTIONS
        assert not missing, (" ".join(demo_words), missing)
        demo_values = _single_values(demo_words)
        for option, value in _single_values(real_words).items():
            if _demo_path(value) is not None:  # the same folder, in the walk's place
                assert demo_values.get(option) == _demo_path(value), (option, value, demo_words)


def test_every_demo_walk_line_is_a_uv_run_command():
    for words in _lines(DEMO_WALK):
        assert words[:2] == ["uv", "run"] and tool_command(words) is not None, words


def _run_line(words: list[str], cwd: Path) -> str:
    """Run one README line in `cwd` as a newcomer's shell would (`uv run` = this environment);
    returns its output, fails the test naming the line on a non-zero exit."""
    from ross3d_data.cli import app as data_app
    from ross3d_eval.cli import app as eval_app
    from ross3d_model.cli import app as model_app
    from typer.testing import CliRunner

    assert words[:2] == ["uv", "run"], words
    words = words[2:]
    line = " ".join(words)
    if words[0] == "torchrun":
        program = Path(sys.executable).parent / "torchrun"
        proc = subprocess.run(
            [str(program), *words[1:]], cwd=cwd, capture_output=True, text=True, timeout=400
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{output[-4000:]}"
        return output
    apps = {"ross3d-data": data_app, "ross3d-model": model_app, "ross3d-eval": eval_app}
    args = [a for w in words[1:] for a in (sorted(glob.glob(w)) if "*" in w else [w])]
    result = CliRunner().invoke(apps[words[0]], args)
    assert result.exit_code == 0, f"`{line}` exited {result.exit_code}:\n{result.output[-4000:]}"
    return result.output


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = _lines(QUICKSTART)
    assert [w[:3] for w in lines] == [["uv", "run", "ross3d-model"], ["uv", "run", "pytest"]]
    _run_line(lines[0], tmp_path)  # the second line is this test suite
    out = tmp_path / "demo-out"  # the products the paragraph after the block names
    assert (out / "report.md").stat().st_size > 0
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"scanqa", "sqa3d", "scan2cap", "scanrefer", "multi3drefer"}
    assert (out / "train" / "metrics.jsonl").read_text().count("\n") >= 10


@pytest.mark.slow
def test_the_demo_walk_runs_as_written(tmp_path, monkeypatch):
    """From nothing to a trained tiny model, its predictions and scores, by the README alone."""
    monkeypatch.chdir(tmp_path)
    outputs = [_run_line(words, tmp_path) for words in _lines(DEMO_WALK)]
    val = json.loads((tmp_path / "demo/annotations/scanqa/ScanQA_v1.0_val.json").read_text())
    assert len(val) >= 4
    # step 3 promises boxes.json: the demo scenes' objects, one table per scene
    boxes = json.loads((tmp_path / "work/boxes.json").read_text())
    assert {item["scene_id"] for item in val} <= set(boxes)
    assert (tmp_path / "demo0000_00.png").stat().st_size > 0
    metrics = (tmp_path / "runs/tiny/metrics.jsonl").read_text().splitlines()
    assert json.loads(metrics[-1])["step"] == 40  # the tiny run config's max_steps
    assert (tmp_path / "runs/tiny/model/model.safetensors").is_file()
    assert (tmp_path / "runs/step20/model.safetensors").is_file()
    predicted = (tmp_path / "pred/scanqa.jsonl").read_text().splitlines()
    assert {json.loads(p)["question_id"] for p in predicted} == {q["question_id"] for q in val}
    result = json.loads((tmp_path / "results/scanqa.json").read_text())
    assert (result["count"], result["missing"]) == (len(val), 0)
    assert 0.0 <= result["metrics"]["EM"] <= 100.0
    report = (tmp_path / "report.md").read_text().splitlines()
    em_row = next(row.split(" | ") for row in report if row.startswith("| scanqa | EM |"))
    assert float(em_row[2]) == round(result["metrics"]["EM"], 1)  # ours, beside the published
    assert "Traceback" not in "".join(outputs)
