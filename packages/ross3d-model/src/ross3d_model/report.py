"""DIR/report.md of the demo: pictures (BEV, view sheet, loss curve), the loss trend of each
named loss over training, and the score table."""

from __future__ import annotations

import math
import os
from pathlib import Path

LOSSES = ("loss", "lm", "cross_view", "bev", "grounding")


def loss_trend(records: list[dict], key: str) -> tuple[float, float, int] | None:
    """(mean over the first third, mean over the last third, points) of the steps that logged
    `key`; None when fewer than 2 points. Cross-view is logged on every k-th step only."""
    values = [r[key] for r in records if isinstance(r.get(key), int | float)]
    values = [v for v in values if math.isfinite(v)]
    if len(values) < 2:
        return None
    third = max(1, len(values) // 3)
    return sum(values[:third]) / third, sum(values[-third:]) / third, len(values)


def trend_table(records: list[dict]) -> str:
    rows = ["| loss | first third | last third | change | steps logged |", "|---|---|---|---|---|"]
    for key in LOSSES:
        trend = loss_trend(records, key)
        if trend is None:
            rows.append(f"| {key} | - | - | - | 0 |")
            continue
        first, last, n = trend
        verdict = "falls" if last < first else "does not fall"
        rows.append(f"| {key} | {first:.4f} | {last:.4f} | {last - first:+.4f} ({verdict}) | {n} |")
    return "\n".join(rows)


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


def write_report(
    out_dir: Path,
    records: list[dict],
    scores: dict[str, dict],
    pictures: dict[str, Path],
    notes: list[str],
) -> Path:
    """Write OUT_DIR/report.md; pictures are linked relative to OUT_DIR."""
    out_dir = Path(out_dir)
    lines = ["# Ross3D demo report", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines += ["## Pictures", ""]
    for title, path in pictures.items():
        lines += [f"### {title}", "", f"![{title}]({os.path.relpath(path, out_dir)})", ""]
    lines += ["## Losses over training", "", trend_table(records), ""]
    lines += [
        "Means over the first and the last third of the logged steps (random tiny model, "
        "synthetic scenes: the point is that the reconstruction losses train, not their values).",
        "",
        "## Scores (ross3d-eval, ross3d protocol)",
        "",
        score_table(scores),
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
