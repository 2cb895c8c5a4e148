"""The demo report's building blocks on small synthetic inputs (the whole demo runs in the slow
tier: tests/train/test_demo_e2e.py): loss verdicts and the picture agree, empty or trivial
answers are said plainly, and the reasons given for non-zero metrics are the scorers' rules."""

from __future__ import annotations

import json

import matplotlib.axes
import pytest
from ross3d_eval.text import match_ross3d, scan2cap_caption
from ross3d_model.report import (
    answer_findings,
    answer_stats,
    findings_section,
    loss_trend,
    plot_loss_trends,
    read_answer_stats,
    trend_table,
    write_report,
)


def _records(key: str, values: list[float]) -> list[dict]:
    return [{"step": i + 1, key: v} for i, v in enumerate(values)]


def test_loss_trend_means_spans_and_verdicts():
    t = loss_trend(_records("lm", [3, 3, 3, 2, 2, 2, 1, 1, 1]), "lm")
    assert (t.first, t.last, t.points) == (3.0, 1.0, 9)
    assert (t.first_steps, t.last_steps, t.verdict) == ((1, 3), (7, 9), "falls")
    assert loss_trend(_records("lm", [1, 1, 1, 2, 2, 2, 3, 3, 3]), "lm").verdict == "rises"
    # thirds (1, 3, 1) and (3, 1, 3): means 5/3 and 7/3, each variance 4/3; the difference 2/3
    # is within twice its standard error 2 * sqrt(8/3 / 3) = 1.89
    noisy = loss_trend(_records("lm", [1, 3, 1, 3, 2, 2, 3, 1, 3]), "lm")
    assert noisy.first == pytest.approx(5 / 3) and noisy.last == pytest.approx(7 / 3)
    assert noisy.verdict == "no clear change"
    assert loss_trend(_records("lm", [2.0]), "lm") is None
    assert loss_trend([{"step": 1, "lm": None}, {"step": 2, "lm": float("nan")}], "lm") is None


def test_the_loss_picture_shows_the_table_numbers(tmp_path, monkeypatch):
    records = [
        {"step": s, "loss": 10 - s, "bev": 1 + s, "cross_view": 5.0 if s % 4 == 0 else None}
        for s in range(1, 13)
    ]
    titles, segments = [], []
    real_plot = matplotlib.axes.Axes.plot

    def plot(self, x, y, *args, **kwargs):
        if kwargs.get("color") == "tab:orange":
            segments.append((tuple(x), tuple(y)))
        return real_plot(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t: titles.append(t))
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    png = plot_loss_trends(records, tmp_path / "trends.png")
    assert png.stat().st_size > 0
    assert titles == ["loss: falls", "cross_view: no clear change", "bev: rises"]
    table = trend_table(records)
    assert "| loss | 7.5000 | -0.5000 | -8.0000 (falls) | 12 |" in table
    assert "| bev | 3.5000 | 11.5000 | +8.0000 (rises) | 12 |" in table
    assert "(no clear change) | 3 |" in table  # cross_view: steps 4, 8, 12
    assert segments[:2] == [((1, 4), (7.5, 7.5)), ((9, 12), (-0.5, -0.5))]


def test_the_reasons_given_are_the_scorers_rules():
    """The report's explanations, checked against ross3d_eval: an empty answer is an EM-R
    match of any reference, and an empty caption is scored as the two tokens 'sos eos'."""
    assert match_ross3d("", ["on the left of the bed"]) == (0, 1)
    assert scan2cap_caption("").split() == ["sos", "eos"]
    assert scan2cap_caption("A chair.").split() == ["sos", "a", "chair", ".", "eos"]


def test_empty_answers_and_why_a_metric_is_non_zero():
    sqa = answer_stats("sqa3d", ["", " ", "", ""])
    lines = answer_findings(sqa, {"EM": 0.0, "EM-R": 100.0})
    assert lines[0] == "sqa3d: all 4 answers are empty."
    assert lines[1].startswith("sqa3d: EM-R is 100.0 with 4 empty answers because ")
    assert "the empty string is contained in every reference" in lines[1]
    cap = answer_stats("scan2cap", ["", "", "a chair"])
    metrics = {"CIDEr@0.5": 0.0, "ROUGE-L@0.5": 41.6, "BLEU-4@0.5": 4e-8}  # 0.0 when shown
    lines = answer_findings(cap, metrics)
    assert lines[0] == "scan2cap: 2 of 3 captions are empty."
    assert lines[1].startswith("scan2cap: ROUGE-L@0.5 41.6 are non-zero with 2 empty captions")
    assert "'sos eos'" in lines[1]


def test_trivial_answers_and_a_clean_benchmark():
    same = answer_stats("scanqa", ["yes", "yes ", "yes"])
    assert same.trivial and not same.all_empty
    assert answer_findings(same, {"EM": 33.3}) == [
        "scanqa: all 3 answers are the same, 'yes', whatever the question."
    ]
    varied = answer_stats("scanqa", ["a chair", "two", "white"])
    assert not varied.trivial and answer_findings(varied, {"EM": 0.0}) == []
    section = findings_section({"scanqa": {"metrics": {"EM": 0.0}}}, {"scanqa": varied})
    assert section[2] == "- No benchmark's answers are empty or all the same."


def test_report_states_the_findings_before_the_pictures(tmp_path):
    preds = tmp_path / "sqa3d.jsonl"
    preds.write_text("".join(json.dumps({"question_id": i, "answer": ""}) + "\n" for i in range(3)))
    assert read_answer_stats("scanrefer", preds) is None  # grounding: no text
    stats = read_answer_stats("sqa3d", preds)
    assert (stats.count, stats.empty) == (3, 3)
    scores = {"sqa3d": {"count": 3, "missing": 0, "metrics": {"EM": 0.0, "EM-R": 100.0}}}
    picture = tmp_path / "pictures" / "views.png"
    report = write_report(
        tmp_path, _records("loss", [3, 2, 1]), scores, {"4 views": picture}, ["note"],
        {"sqa3d": stats},
    )  # fmt: skip
    text = report.read_text()
    assert text.index("## What the answers are") < text.index("## Pictures")
    assert "- sqa3d: all 3 answers are empty." in text
    assert "- An empty answer is one whose decoded text is empty" in text
    assert "![4 views](pictures/views.png)" in text
    assert "| EM-R | 100.00 |" in text
