"""DIR/report.md of the demo: what the answers are (empty or trivial answers said plainly, and
why a metric is non-zero anyway), pictures (BEV, the views of one clip, the loss trends), the
loss trend of each named loss over training, and the score table.

The loss table and the loss picture are drawn from the same numbers (`loss_trend`): each
panel shows the logged values and, as two horizontal segments, the means over the first and
the last third of them that the table lists, titled with the table's verdict.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LOSSES = ("loss", "lm", "cross_view", "bev", "grounding")
TEXT_FIELDS = {"scanqa": "answer", "sqa3d": "answer", "scan2cap": "caption"}
EM_R_RULE = (
    "the reference protocol's refined match (EM-R) accepts an answer contained in a reference "
    "once spaces are removed, and the empty string is contained in every reference"
)
EMPTY_MEANS = (
    "An empty answer is one whose decoded text is empty once special tokens are dropped and "
    "whitespace stripped: the model produced only chat markers (a barely trained one repeats "
    "the `<|im_start|>` and newline tokens its LM loss trains) or whitespace before "
    "`<|im_end|>` or the new-token limit."
)
SCAN2CAP_RULE = (
    "the reference protocol scores every caption as 'sos <caption> eos', so an empty caption "
    "is 'sos eos' and its two tokens occur in every reference (objects whose box misses the "
    "GT box are scored with that empty caption too)"
)


# ---------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class Trend:
    """Means of a loss over the first and the last third of its logged steps, the steps those
    thirds span, and the verdict: `falls` / `rises` when the means differ by more than twice
    the standard error of their difference, else `no clear change`."""

    first: float
    last: float
    points: int
    first_steps: tuple[int, int]
    last_steps: tuple[int, int]
    verdict: str


def loss_trend(records: list[dict], key: str) -> Trend | None:
    """The `Trend` of `key` over the steps that logged it; None when fewer than 2 points.
    Cross-view is logged on every k-th step only."""
    points = [(r["step"], r[key]) for r in records if _finite(r.get(key))]
    if len(points) < 2:
        return None
    third = max(1, len(points) // 3)
    head, tail = points[:third], points[-third:]
    first = sum(v for _, v in head) / third
    last = sum(v for _, v in tail) / third
    spread = 0.0
    if third > 1:
        var = statistics.variance([v for _, v in head]) + statistics.variance([v for _, v in tail])
        spread = 2 * math.sqrt(var / third)
    verdict = (
        "falls"
        if last < first - spread
        else "rises"
        if last > first + spread
        else "no clear change"
    )
    span = ((head[0][0], head[-1][0]), (tail[0][0], tail[-1][0]))
    return Trend(first, last, len(points), span[0], span[1], verdict)


def trend_table(records: list[dict]) -> str:
    rows = ["| loss | first third | last third | change | steps logged |", "|---|---|---|---|---|"]
    for key in LOSSES:
        t = loss_trend(records, key)
        if t is None:
            rows.append(f"| {key} | - | - | - | 0 |")
            continue
        change = f"{t.last - t.first:+.4f} ({t.verdict})"
        rows.append(f"| {key} | {t.first:.4f} | {t.last:.4f} | {change} | {t.points} |")
    return "\n".join(rows)


def plot_loss_trends(records: list[dict], out_png: str | Path) -> Path:
    """One panel per logged loss: the values against the step, the first- and last-third means
    of `loss_trend` as segments over the steps they average, the verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in LOSSES if loss_trend(records, k) is not None]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.0))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, key in zip(axes, keys, strict=False):
        t = loss_trend(records, key)
        points = [(r["step"], r[key]) for r in records if _finite(r.get(key))]
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, marker=".", lw=0.8, alpha=0.5, color="tab:blue")
        for (a, b), mean in ((t.first_steps, t.first), (t.last_steps, t.last)):
            ax.plot([a, b], [mean, mean], lw=2.5, color="tab:orange")
        ax.set_title(f"{key}: {t.verdict}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if not keys:
        axes[0].text(0.5, 0.5, "no losses logged", ha="center", va="center")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------- answers
@dataclass(frozen=True)
class AnswerStats:
    """The text predictions of one benchmark: how many, how many empty (after strip), how many
    distinct, and the most common one with its count."""

    benchmark: str
    count: int
    empty: int
    distinct: int
    top: str
    top_count: int

    @property
    def all_empty(self) -> bool:
        return self.count > 0 and self.empty == self.count

    @property
    def trivial(self) -> bool:
        """Every answer empty, or (more than one answer) every answer the same."""
        return self.all_empty or (self.count > 1 and self.distinct == 1)


def answer_stats(benchmark: str, texts: list[str]) -> AnswerStats:
    stripped = [t.strip() for t in texts]
    top, top_count = Counter(stripped).most_common(1)[0] if stripped else ("", 0)
    empty = sum(not t for t in stripped)
    return AnswerStats(benchmark, len(texts), empty, len(set(stripped)), top, top_count)


def read_answer_stats(benchmark: str, predictions: Path) -> AnswerStats | None:
    """`AnswerStats` of a predictions JSON-lines file (None for the grounding benchmarks)."""
    field = TEXT_FIELDS.get(benchmark)
    if field is None:
        return None
    lines = Path(predictions).read_text().splitlines()
    return answer_stats(benchmark, [json.loads(line)[field] for line in lines if line.strip()])


def answer_findings(stats: AnswerStats, metrics: dict[str, float]) -> list[str]:
    """Plain sentences about a benchmark's answers: empty or all the same, and why a metric
    is non-zero anyway (the reference protocol's EM-R and Scan2Cap rules)."""
    b, n = stats.benchmark, stats.count
    what = "captions" if b == "scan2cap" else "answers"
    out = []
    if stats.all_empty:
        out.append(f"{b}: all {n} {what} are empty.")
    elif stats.empty:
        out.append(f"{b}: {stats.empty} of {n} {what} are empty.")
    if not stats.all_empty and stats.trivial:
        out.append(f"{b}: all {n} {what} are the same, {stats.top!r}, whatever the question.")
    if not stats.empty:
        return out
    if metrics.get("EM-R", 0) > 0:
        out.append(
            f"{b}: EM-R is {metrics['EM-R']:.1f} with {stats.empty} empty {what} because "
            f"{EM_R_RULE}; EM counts none of them."
        )
    if b == "scan2cap":
        named = ", ".join(f"{k} {v:.1f}" for k, v in metrics.items() if round(v, 1) > 0)
        if named:
            out.append(f"{b}: {named} are non-zero with {stats.empty} empty {what} because "
                       f"{SCAN2CAP_RULE}.")  # fmt: skip
    return out


# ---------------------------------------------------------------------------- the report
def score_table(scores: dict[str, dict]) -> str:
    """Markdown table per benchmark: metric -> value (percent)."""
    parts = []
    for bench, result in scores.items():
        metrics = result.get("metrics", {})
        head = (
            f"**{bench}** ({result.get('count', '?')} items, {result.get('missing', '?')} missing)"
        )
        lines = [head, "", "| metric | score |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in metrics.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def findings_section(scores: dict[str, dict], answers: dict[str, AnswerStats]) -> list[str]:
    """The report's "What the answers are" lines: every finding, or that none is trivial."""
    lines = []
    for bench, stats in answers.items():
        lines += answer_findings(stats, scores.get(bench, {}).get("metrics", {}))
    if not lines:
        lines = ["No benchmark's answers are empty or all the same."]
    if any(stats.empty for stats in answers.values()):
        lines.append(EMPTY_MEANS)
    return ["## What the answers are", "", *[f"- {line}" for line in lines], ""]


def write_report(
    out_dir: Path,
    records: list[dict],
    scores: dict[str, dict],
    pictures: dict[str, Path],
    notes: list[str],
    answers: dict[str, AnswerStats] | None = None,
) -> Path:
    """Write OUT_DIR/report.md; pictures are linked relative to OUT_DIR."""
    out_dir = Path(out_dir)
    lines = ["# Ross3D demo report", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines += findings_section(scores, answers or {})
    lines += ["## Pictures", ""]
    for title, path in pictures.items():
        lines += [f"### {title}", "", f"![{title}]({os.path.relpath(path, out_dir)})", ""]
    lines += ["## Losses over training", "", trend_table(records), ""]
    lines += [
        "Means over the first and the last third of the logged steps (the orange segments of "
        "the loss picture); a change within twice its standard error is 'no clear change'. "
        "Random tiny model, synthetic scenes: the point is that the reconstruction losses "
        "train, not their values.",
        "",
        "## Scores (ross3d-eval, ross3d protocol)",
        "",
        score_table(scores),
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
